"""apps/v1 kinds (Deployment, ReplicaSet) and coordination.k8s.io/v1 Lease:
defaults and validation as pkg/apis/apps/v1/defaults.go and validation.go."""

from __future__ import annotations

import copy
import json
import re

from kybern.api import omitempty
from kybern.api.core import default_pod_spec, validate_deletion_cost, validate_pod_template
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy, validate_label_selector
from kybern.machinery import errors, selectors


def _validate_selector_and_template(obj: Obj, kind: str = "deployment") -> list[Cause]:
    """`kind`: the word upstream's empty-selector message ends with (a ReplicaSet's is
    "deployment" too, as upstream's)."""
    out: list[Cause] = []
    spec = obj.get("spec") or {}
    sel = spec.get("selector")
    bad_selector = False
    if not isinstance(sel, dict):
        out.append(errors.required("spec.selector"))
    else:
        # ValidateLabelSelector first; a selector it refuses is not matched against the
        # template (LabelSelectorAsSelector fails upstream too)
        bad = validate_label_selector(sel, "spec.selector")
        out.extend(bad)
        bad_selector = bool(bad)
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            out.append(errors.cause("spec.selector", f"Invalid value: {{}}: empty selector is invalid for {kind}"))
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    if isinstance(sel, dict) and (sel.get("matchLabels") or sel.get("matchExpressions")) and not bad_selector:
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
    out.extend(validate_deletion_cost((tmpl.get("metadata") or {}).get("annotations"),
                                      "spec.template.metadata.annotations"))
    if kind == "statefulset" and spec.get("volumeClaimTemplates"):
        # its pods get a claim volume per volumeClaimTemplate, which their mounts may name
        # (upstream does not validate a StatefulSet's pod spec at all)
        pod_spec = tmpl.get("spec") or {}
        names = [(c.get("metadata") or {}).get("name") for c in spec["volumeClaimTemplates"] if isinstance(c, dict)]
        names = [n for n in names if isinstance(n, str) and n]
        # a claim replaces a template volume of its name (in place, so other volumes keep their
        # index in messages), as the controller's updateStorage does
        claim = {n: {"name": n, "persistentVolumeClaim": {"claimName": n}} for n in names}
        volumes = [claim.pop(v["name"]) if isinstance(v, dict) and v.get("name") in claim else v
                   for v in pod_spec.get("volumes") or []]
        tmpl = {**tmpl, "spec": {**pod_spec, "volumes": volumes + list(claim.values())}}
    out.extend(validate_pod_template(tmpl, "spec.template"))
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
    selector_word = "deployment"

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_selector_and_template(obj, self.selector_word)

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
        if st.get("type") == "RollingUpdate" and isinstance(st.get("rollingUpdate"), dict):
            out.extend(_validate_rolling_update(st["rollingUpdate"], "spec.strategy.rollingUpdate"))
        spec = obj.get("spec") or {}
        mrs, rhl, pds = spec.get("minReadySeconds"), spec.get("revisionHistoryLimit"), \
            spec.get("progressDeadlineSeconds")
        for name, v in (("minReadySeconds", mrs), ("revisionHistoryLimit", rhl), ("progressDeadlineSeconds", pds)):
            if isinstance(v, int) and v < 0:
                out.append(errors.cause(f"spec.{name}", f"Invalid value: {v}: must be greater than or equal to 0"))
        if isinstance(pds, int) and pds <= (mrs if isinstance(mrs, int) else 0):
            out.append(errors.cause("spec.progressDeadlineSeconds",
                                    f"Invalid value: {pds}: must be greater than minReadySeconds"))
        return out


_PERCENT = re.compile(r"^[0-9]+%$")


def _go_intstr(v: object) -> str:
    """%#v of an intstr.IntOrString, as field.Invalid prints it (Type 0 int, 1 string)."""
    if isinstance(v, str):
        return f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:{json.dumps(v)}}}'
    return f'intstr.IntOrString{{Type:0, IntVal:{v if isinstance(v, int) else 0}, StrVal:""}}'


def _int_or_percent(v: object) -> int:
    """getIntOrPercentValue: a valid percent's number, else the integer (a string's Atoi)."""
    if isinstance(v, str):
        if _PERCENT.match(v):
            return int(v[:-1])
        return int(v) if v.lstrip("-").isdigit() else 0
    return v if isinstance(v, int) else 0


def _positive_int_or_percent(ru: Obj, path: str) -> list[Cause]:
    """ValidatePositiveIntOrPercent of maxUnavailable, then maxSurge."""
    out: list[Cause] = []
    for name in ("maxUnavailable", "maxSurge"):
        v = ru.get(name)
        if isinstance(v, str) and not _PERCENT.match(v):
            out.append(errors.cause(f"{path}.{name}", f"Invalid value: {_go_intstr(v)}: a valid percent string must "
                                    "be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex "
                                    "used for validation is '[0-9]+%')"))
        elif isinstance(v, int) and v < 0:
            out.append(errors.cause(f"{path}.{name}", f"Invalid value: {v}: must be greater than or equal to 0"))
    return out


def _over_100(v: object) -> bool:
    return isinstance(v, str) and bool(_PERCENT.match(v)) and int(v[:-1]) > 100


def _validate_daemonset_rolling_update(ru: Obj, path: str) -> list[Cause]:
    """ValidateRollingUpdateDaemonSet: exactly one of maxUnavailable and maxSurge non-zero."""
    out = _positive_int_or_percent(ru, path)
    mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
    for name, v in (("maxUnavailable", mu), ("maxSurge", ms)):
        if _over_100(v):
            out.append(errors.cause(f"{path}.{name}", f"Invalid value: {_go_intstr(v)}: must not be greater than "
                                    "100%"))
    has_mu, has_ms = _int_or_percent(mu) != 0, _int_or_percent(ms) != 0
    if has_mu and has_ms:
        out.append(errors.cause(f"{path}.maxSurge", f"Invalid value: {_go_intstr(ms)}: may not be set when "
                                "maxUnavailable is non-zero"))
    elif not has_mu and not has_ms:
        out.append(errors.cause(f"{path}.maxUnavailable", "Required value: cannot be 0 when maxSurge is 0",
                                "FieldValueRequired"))
    return out


def _validate_rolling_update(ru: Obj, path: str) -> list[Cause]:
    """ValidateRollingUpdateDeployment."""
    out = _positive_int_or_percent(ru, path)
    mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
    if _int_or_percent(mu) == 0 and _int_or_percent(ms) == 0:
        out.append(errors.cause(f"{path}.maxUnavailable", f"Invalid value: {_go_intstr(mu)}: may not be 0 when "
                                "`maxSurge` is 0"))
    if _over_100(mu):
        out.append(errors.cause(f"{path}.maxUnavailable", f"Invalid value: {_go_intstr(mu)}: must not be greater "
                                "than 100%"))
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

    def validate(self, obj: Obj) -> list[Cause]:
        out = super().validate(obj)
        mrs = (obj.get("spec") or {}).get("minReadySeconds")
        if isinstance(mrs, int) and mrs < 0:  # ValidateReplicaSetSpec
            out.append(errors.cause("spec.minReadySeconds", f"Invalid value: {mrs}: must be greater than or equal "
                                    "to 0"))
        return out


class StatefulSetStrategy(_WorkloadStrategy):
    selector_word = "statefulset"

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"replicas": 0, "availableReplicas": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {})
        if not us.get("type"):  # as upstream: rollingUpdate is defaulted only with the type
            us["type"] = "RollingUpdate"
            if us.get("rollingUpdate") is None:
                us["rollingUpdate"] = {}
        if us["type"] == "RollingUpdate" and isinstance(us.get("rollingUpdate"), dict):
            us["rollingUpdate"].setdefault("partition", 0)
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        pol = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        pol.setdefault("whenDeleted", "Retain")
        pol.setdefault("whenScaled", "Retain")
        _default_claim_templates(spec)
        tmpl = spec.setdefault("template", {})
        tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(tmpl.setdefault("spec", {}))

    def validate(self, obj: Obj) -> list[Cause]:
        out = super().validate(obj)
        spec = obj.get("spec") or {}
        # ValidateStatefulSetSpec (pkg/apis/apps/validation), its wording and Go value formats
        pmp = spec.get("podManagementPolicy")
        if pmp not in ("OrderedReady", "Parallel"):
            out.append(errors.cause("spec.podManagementPolicy", f'Invalid value: "{pmp}": '
                                    "must be 'OrderedReady' or 'Parallel'"))
        us = spec.get("updateStrategy") or {}
        t = us.get("type")
        ru = us.get("rollingUpdate")
        if t == "OnDelete" and ru is not None:
            out.append(errors.cause("spec.updateStrategy.rollingUpdate",
                                    f"Invalid value: {_go_rolling_update(ru)}: "
                                    "only allowed for updateStrategy 'RollingUpdate'"))
        elif t == "RollingUpdate" and isinstance(ru, dict):
            part = ru.get("partition")
            if isinstance(part, int) and part < 0:
                out.append(errors.cause("spec.updateStrategy.rollingUpdate.partition",
                                        f"Invalid value: {part}: must be greater than or equal to 0"))
        elif t not in ("RollingUpdate", "OnDelete"):
            ptr = "(*apps.RollingUpdateStatefulSetStrategy)(nil)" if ru is None else \
                "(*apps.RollingUpdateStatefulSetStrategy)(0xc000000000)"
            out.append(errors.cause("spec.updateStrategy",
                                    f'Invalid value: apps.StatefulSetUpdateStrategy{{Type:"{t or ""}", '
                                    f"RollingUpdate:{ptr}}}: must be 'RollingUpdate' or 'OnDelete'"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        mutable = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                   "minReadySeconds")
        ns = {k: v for k, v in (new.get("spec") or {}).items() if k not in mutable}
        os_ = {k: v for k, v in (old.get("spec") or {}).items() if k not in mutable}
        os_ = _default_claim_templates(json.loads(json.dumps(os_)))  # stored before those defaults
        if ns != os_:
            out.append(errors.cause("spec", "Forbidden: updates to statefulset spec for fields other than "
                                    "'replicas', 'ordinals', 'template', 'updateStrategy', "
                                    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                                    "FieldValueForbidden"))
        return out


def _default_claim_templates(spec: Obj) -> Obj:
    for pvc in spec.get("volumeClaimTemplates") or []:
        if not isinstance(pvc, dict):
            continue
        # kube-apiserver stores claim templates as whole PersistentVolumeClaims
        pvc.setdefault("apiVersion", "v1")
        pvc.setdefault("kind", "PersistentVolumeClaim")
        if isinstance(pvc.get("metadata"), dict):
            pvc["metadata"].setdefault("creationTimestamp", None)
        pvc.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        pvc.setdefault("status", {}).setdefault("phase", "Pending")
    return spec


def _go_rolling_update(ru: object) -> str:
    """%#v of the internal apps.RollingUpdateStatefulSetStrategy, as field.Invalid prints it."""
    ru = ru if isinstance(ru, dict) else {}
    # a nested pointer prints as its address in Go; any address stands for it here
    mus = "(*intstr.IntOrString)(nil)" if ru.get("maxUnavailable") is None else "(*intstr.IntOrString)(0xc000000000)"
    return f"apps.RollingUpdateStatefulSetStrategy{{Partition:{int(ru.get('partition') or 0)}, MaxUnavailable:{mus}}}"


# apps/v1 carries the internal spec.templateGeneration as this annotation (upstream's
# Convert_apps_DaemonSet_To_v1_DaemonSet); the controller labels pods with it
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


def template_generation(ds: Obj) -> int:
    """util.GetTemplateGeneration: the annotation's number, 0 when absent or not one."""
    v = ((ds.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION)
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _set_template_generation(ds: Obj, gen: int) -> None:
    m = ds.setdefault("metadata", {})
    if not isinstance(m.get("annotations"), dict):
        m["annotations"] = {}
    m["annotations"][TEMPLATE_GENERATION] = str(gen)


class DaemonSetStrategy(_WorkloadStrategy):
    selector_word = "daemonset"
    server_set_annotations = (TEMPLATE_GENERATION,)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                         "numberReady": 0}
        _set_template_generation(obj, max(template_generation(obj), 1))

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """As upstream's: the template generation is the stored one, one more when the
        template changed (compared after the Go round trip: empty omitempty lists are
        no change); a value in the body is not taken."""
        super().prepare_for_update(new, old)
        gen = template_generation(old) or int(old["metadata"].get("generation") or 1)
        a = copy.deepcopy((new.get("spec") or {}).get("template"))
        b = (old.get("spec") or {}).get("template")
        if a != b:
            probe = {"spec": {"template": a}}
            omitempty.drop_empty("io.k8s.api.apps.v1.DaemonSet", probe)
            if probe["spec"]["template"] != b:
                gen += 1
        _set_template_generation(new, gen)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        us = spec.setdefault("updateStrategy", {})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        tmpl = spec.setdefault("template", {})
        tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(tmpl.setdefault("spec", {}))

    def validate(self, obj: Obj) -> list[Cause]:
        out = super().validate(obj)
        spec = obj.get("spec") or {}
        us = spec.get("updateStrategy") or {}
        t = us.get("type")
        if isinstance(spec.get("minReadySeconds"), int) and spec["minReadySeconds"] < 0:
            out.append(errors.cause("spec.minReadySeconds", f"Invalid value: {spec['minReadySeconds']}: must be "
                                    "greater than or equal to 0"))
        if t not in ("RollingUpdate", "OnDelete"):
            out.append(errors.cause("spec.updateStrategy.type", f'Unsupported value: "{t}": supported values: '
                                    '"OnDelete", "RollingUpdate"', "FieldValueNotSupported"))
        if t == "RollingUpdate" and isinstance(us.get("rollingUpdate"), dict):
            out.extend(_validate_daemonset_rolling_update(us["rollingUpdate"], "spec.updateStrategy.rollingUpdate"))
        rhl = spec.get("revisionHistoryLimit")
        if isinstance(rhl, int) and rhl < 0:
            out.append(errors.cause("spec.revisionHistoryLimit", f"Invalid value: {rhl}: must be greater than or "
                                    "equal to 0"))
        return out


class ControllerRevisionStrategy(Strategy):
    raw_fields = ("data",)

    def validate(self, obj: Obj) -> list[Cause]:
        rev = obj.get("revision")
        if not isinstance(rev, int) or rev < 0:
            return [errors.cause("revision", f"Invalid value: {rev}: must be greater than or equal to 0")]
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        if new.get("data") != old.get("data"):
            out.append(errors.cause("data", "Invalid value: ...: field is immutable"))
        return out


RESOURCES = [
    ResourceInfo("apps", "v1", "Deployment", "deployments", True, "io.k8s.api.apps.v1.Deployment",
                 short_names=("deploy",), categories=("all",), subresources=("status", "scale"),
                 strategy=DeploymentStrategy()),
    ResourceInfo("apps", "v1", "ReplicaSet", "replicasets", True, "io.k8s.api.apps.v1.ReplicaSet",
                 short_names=("rs",), categories=("all",), subresources=("status", "scale"),
                 strategy=ReplicaSetStrategy()),
    ResourceInfo("apps", "v1", "StatefulSet", "statefulsets", True, "io.k8s.api.apps.v1.StatefulSet",
                 short_names=("sts",), categories=("all",), subresources=("status", "scale"),
                 strategy=StatefulSetStrategy()),
    ResourceInfo("apps", "v1", "DaemonSet", "daemonsets", True, "io.k8s.api.apps.v1.DaemonSet",
                 short_names=("ds",), categories=("all",), subresources=("status",),
                 strategy=DaemonSetStrategy()),
    ResourceInfo("apps", "v1", "ControllerRevision", "controllerrevisions", True,
                 "io.k8s.api.apps.v1.ControllerRevision", strategy=ControllerRevisionStrategy()),
    ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", True,
                 "io.k8s.api.coordination.v1.Lease", strategy=Strategy()),
]
