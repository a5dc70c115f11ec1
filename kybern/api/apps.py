"""apps/v1 kinds (Deployment, ReplicaSet) and coordination.k8s.io/v1 Lease:
defaults and validation as pkg/apis/apps/v1/defaults.go and validation.go."""

from __future__ import annotations

from kybern.api.core import default_pod_spec, validate_pod_spec
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors, selectors


def _validate_selector_and_template(obj: Obj) -> list[Cause]:
    out: list[Cause] = []
    spec = obj.get("spec") or {}
    sel = spec.get("selector")
    if not isinstance(sel, dict):
        out.append(errors.required("spec.selector"))
    elif not sel.get("matchLabels") and not sel.get("matchExpressions"):
        out.append(errors.cause("spec.selector", "Invalid value: {}: empty selector is invalid for deployment"))
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    if isinstance(sel, dict) and (sel.get("matchLabels") or sel.get("matchExpressions")):
        try:
            ok = selectors.selector_matches(sel, labels)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            out.append(errors.cause("spec.template.metadata.labels",
                                    f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`"))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        out.append(errors.cause("spec.replicas",
                                f"Invalid value: {replicas}: must be greater than or equal to 0"))
    out.extend(validate_pod_spec(tmpl.get("spec"), "spec.template.spec"))
    rp = (tmpl.get("spec") or {}).get("restartPolicy")
    if rp not in (None, "Always"):
        out.append(errors.cause("spec.template.spec.restartPolicy",
                                f'Unsupported value: "{rp}": supported values: "Always"',
                                "FieldValueNotSupported"))
    return out


def _go_map(m: dict[str, str]) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(m.items())) + "}"


class _WorkloadStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_selector_and_template(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        if (new.get("spec") or {}).get("selector") != (old.get("spec") or {}).get("selector"):
            out.append(errors.cause("spec.selector",
                                    f"Invalid value: {_selector_repr(new)}: field is immutable"))
        return out

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {}


def _selector_repr(obj: Obj) -> str:
    sel = (obj.get("spec") or {}).get("selector") or {}
    return "v1.LabelSelector{MatchLabels:" + _go_map(sel.get("matchLabels") or {}) + \
        ", MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"


class DeploymentStrategy(_WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        st = spec.setdefault("strategy", {})
        st.setdefault("type", "RollingUpdate")
        if st["type"] == "RollingUpdate":
            ru = st.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        tmpl = spec.setdefault("template", {})
        tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(tmpl.setdefault("spec", {}))

    def validate(self, obj: Obj) -> list[Cause]:
        out = super().validate(obj)
        st = (obj.get("spec") or {}).get("strategy") or {}
        if st.get("type") not in ("RollingUpdate", "Recreate"):
            out.append(errors.cause("spec.strategy.type", f'Unsupported value: "{st.get("type")}": '
                                    'supported values: "Recreate", "RollingUpdate"', "FieldValueNotSupported"))
        if st.get("type") == "Recreate" and st.get("rollingUpdate"):
            out.append(errors.cause("spec.strategy.rollingUpdate",
                                    "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                                    "FieldValueForbidden"))
        return out


class ReplicaSetStrategy(_WorkloadStrategy):
    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"replicas": 0}  # ReplicaSetStatus.replicas is not omitempty in Go

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        tmpl = spec.setdefault("template", {})
        tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(tmpl.setdefault("spec", {}))


RESOURCES = [
    ResourceInfo("apps", "v1", "Deployment", "deployments", True, "io.k8s.api.apps.v1.Deployment",
                 short_names=("deploy",), categories=("all",), subresources=("status", "scale"),
                 strategy=DeploymentStrategy()),
    ResourceInfo("apps", "v1", "ReplicaSet", "replicasets", True, "io.k8s.api.apps.v1.ReplicaSet",
                 short_names=("rs",), categories=("all",), subresources=("status", "scale"),
                 strategy=ReplicaSetStrategy()),
    ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", True,
                 "io.k8s.api.coordination.v1.Lease", strategy=Strategy()),
]
