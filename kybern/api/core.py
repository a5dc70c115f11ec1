"""core/v1 kinds: registry entries, defaults (SetDefaults_* in pkg/apis/core/v1/
defaults.go) and the validation upstream's apiserver adds beyond the schema."""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from typing import Any

from kybern.api.pod_validation import (port_name_causes, port_number_causes, validate_ephemeral_containers,
                                       validate_pod_only, validate_pod_spec_details)
from kybern.api.podscheduling import (validate_affinity, validate_taints, validate_tolerations,
                                      validate_topology_spread)
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import (Cause, Obj, Strategy, validate_annotations, validate_dns_label, validate_dns_subdomain,
                                 validate_labels)
from kybern.machinery import errors, gojson, meta, quantity


def default_container(c: Obj, *, init: bool = False) -> None:
    image = c.get("image", "")
    if "imagePullPolicy" not in c:
        last = image.rsplit("/", 1)[-1]
        tagless = ":" not in last and "@" not in image
        c["imagePullPolicy"] = "Always" if tagless or last.endswith(":latest") else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for e in c.get("env") or []:
        if isinstance(e, dict) and isinstance(e.get("valueFrom"), dict):
            _default_field_ref(e["valueFrom"])
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)
            _default_handler(pr)
            if isinstance(pr.get("grpc"), dict) and pr["grpc"].get("service") is None:
                pr["grpc"]["service"] = ""  # GRPCAction.service: +default=""
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            _default_handler(lifecycle.get(hook))


def _default_handler(handler: object) -> None:
    """SetDefaults_HTTPGetAction, for probes and lifecycle hooks alike."""
    if isinstance(handler, dict) and isinstance(handler.get("httpGet"), dict):
        if not handler["httpGet"].get("path"):
            handler["httpGet"]["path"] = "/"
        handler["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec: Obj) -> None:
    """Defaults of every pod spec, a Pod's or a template's (SetDefaults_PodSpec and
    the defaults of its parts). What only a Pod gets is default_pod_only."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in spec.get("initContainers") or []:
        default_container(c, init=True)
    for c in spec.get("containers") or []:
        default_container(c)
    if spec.get("hostNetwork"):  # defaultHostNetworkPorts: on the host's network a port is a host port
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for p in (c.get("ports") or []) if isinstance(c, dict) else []:
                if isinstance(p, dict) and not p.get("hostPort") and p.get("containerPort") is not None:
                    p["hostPort"] = p["containerPort"]
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if not any(k != "name" and v[k] is not None for k in v):
            v["emptyDir"] = {}  # SetDefaults_Volume: a volume naming no source is an emptyDir
        for kind in ("configMap", "secret", "downwardAPI", "projected"):
            if isinstance(v.get(kind), dict):
                v[kind].setdefault("defaultMode", 420)
        if isinstance(v.get("hostPath"), dict):
            v["hostPath"].setdefault("type", "")  # SetDefaults_HostPathVolumeSource: HostPathUnset
        if isinstance(v.get("downwardAPI"), dict):
            for item in v["downwardAPI"].get("items") or []:
                _default_field_ref(item)
        if isinstance(v.get("projected"), dict):
            for src in v["projected"].get("sources") or []:
                if not isinstance(src, dict):
                    continue
                if isinstance(src.get("downwardAPI"), dict):
                    for item in src["downwardAPI"].get("items") or []:
                        _default_field_ref(item)
                if isinstance(src.get("serviceAccountToken"), dict):
                    src["serviceAccountToken"].setdefault("expirationSeconds", 3600)


def _default_field_ref(holder: object) -> None:
    """SetDefaults_ObjectFieldSelector: a fieldRef's apiVersion is v1 unless given.
    A resourceFieldRef's divisor is a non-pointer Quantity, which Go's omitempty never
    drops: unset, kube-apiserver writes its zero value, `divisor: "0"` (the kubelet
    reads it as 1)."""
    if isinstance(holder, dict) and isinstance(holder.get("fieldRef"), dict) \
            and not holder["fieldRef"].get("apiVersion"):
        holder["fieldRef"]["apiVersion"] = "v1"
    if isinstance(holder, dict) and isinstance(holder.get("resourceFieldRef"), dict):
        holder["resourceFieldRef"].setdefault("divisor", "0")


def default_pod_only(spec: Obj) -> None:
    """SetDefaults_Pod: defaults a Pod gets but a template (a Deployment's, a Job's...)
    does not, so `kubectl get deploy -o yaml` shows the template as written: requests
    default to limits, and enableServiceLinks to true."""
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        res = c.get("resources")
        if not isinstance(res, dict) or not isinstance(res.get("limits"), dict) or not res["limits"]:
            continue
        req = res.get("requests")
        if not isinstance(req, dict):
            req = res["requests"] = {}
        for k, v in res["limits"].items():
            req.setdefault(k, v)
    spec.setdefault("enableServiceLinks", True)


def qos_class(spec: Obj) -> str:
    """Guaranteed / Burstable / BestEffort, as pkg/apis/core/helper/qos."""
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def validate_pod_template(tmpl: Any, path: str) -> list[Cause]:
    """ValidatePodTemplateSpec: the template's labels and annotations as any object's
    metadata, then its pod spec (a workload whose template a pod could not carry is
    refused up front, not left failing to create pods)."""
    tmpl = tmpl if isinstance(tmpl, dict) else {}
    m = tmpl.get("metadata") if isinstance(tmpl.get("metadata"), dict) else {}
    return (validate_labels(m.get("labels"), f"{path}.metadata.labels")
            + validate_annotations(m.get("annotations"), f"{path}.metadata.annotations")
            + validate_pod_spec(tmpl.get("spec"), f"{path}.spec"))


def validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    if not isinstance(spec, dict):
        return [errors.required(path)]
    containers = spec.get("containers")
    if not containers:
        out.append(errors.required(f"{path}.containers"))
    names: set[str] = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            if not isinstance(c, dict):
                continue
            p = f"{path}.{kind}[{i}]"
            out.extend(_name_and_image(c, p, names))
            pp = c.get("imagePullPolicy")
            if pp is not None and pp not in PULL_POLICIES:
                out.append(not_supported(f"{p}.imagePullPolicy", pp, PULL_POLICIES))
            out.extend(validate_container_ports(c.get("ports"), f"{p}.ports"))
            out.extend(validate_resource_requirements(c.get("resources"), f"{p}.resources"))
    rp = spec.get("restartPolicy")
    if rp is not None and rp not in ("Always", "OnFailure", "Never"):
        out.append(not_supported(f"{path}.restartPolicy", rp, ("Always", "OnFailure", "Never")))
    dp = spec.get("dnsPolicy")
    if dp is not None and dp not in DNS_POLICIES:
        out.append(not_supported(f"{path}.dnsPolicy", dp, DNS_POLICIES))
    out.extend(validate_affinity(spec.get("affinity"), f"{path}.affinity"))
    out.extend(validate_topology_spread(spec.get("topologySpreadConstraints"), f"{path}.topologySpreadConstraints"))
    # names ValidatePodSpec checks, in its order (`kubectl set serviceaccount deploy/x Bad_SA`
    # is refused here: the ServiceAccount plugin only looks at pods)
    for key, check in (("serviceAccountName", validate_dns_subdomain), ("nodeName", validate_dns_subdomain)):
        if isinstance(spec.get(key), str) and spec[key]:
            out.extend(check(spec[key], f"{path}.{key}"))
    ads = spec.get("activeDeadlineSeconds")
    if isinstance(ads, int) and not 1 <= ads <= 2**31 - 1:
        out.append(errors.cause(f"{path}.activeDeadlineSeconds",
                                f"Invalid value: {ads}: must be between 1 and 2147483647, inclusive"))
    for key in ("hostname", "subdomain"):
        if isinstance(spec.get(key), str) and spec[key]:
            out.extend(validate_dns_label(spec[key], f"{path}.{key}"))
    out.extend(validate_tolerations(spec.get("tolerations"), f"{path}.tolerations"))
    out.extend(validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    return out + validate_pod_spec_details(spec, path)


DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def deletion_cost_valid(annotations: Any) -> bool:
    """GetDeletionCostFromPodAnnotations: absent, or a 32-bit integer written
    without '+' or leading zeros."""
    v = (annotations or {}).get(DELETION_COST) if isinstance(annotations, dict) else None
    if v is None:
        return True
    # upstream's validFirstDigit then strconv.ParseInt(v, 10, 32): "-007" passes, "007" does not
    if not isinstance(v, str) or not re.fullmatch(r"-[0-9]+|0|[1-9][0-9]*", v):
        return False
    return -2**31 <= int(v) < 2**31


def validate_deletion_cost(annotations: Any, path: str) -> list[Cause]:
    """ValidatePodSpecificAnnotations' pod-deletion-cost check (pods and pod templates)."""
    if deletion_cost_valid(annotations):
        return []
    return [errors.cause(f"{path}[{DELETION_COST}]",
                         f"Invalid value: {json.dumps(annotations[DELETION_COST])}: must be a 32bit integer")]


def validate_resource_requirements(res: Any, path: str) -> list[Cause]:
    """ValidateResourceRequirements: no negative quantity, no request above its limit
    (what a LimitRange's default limit below a written request leads to)."""
    out: list[Cause] = []
    if not isinstance(res, dict):
        return out
    limits, requests = res.get("limits"), res.get("requests")
    limits = limits if isinstance(limits, dict) else {}
    requests = requests if isinstance(requests, dict) else {}
    for kind, values in (("limits", limits), ("requests", requests)):
        for name in sorted(values):
            try:
                if quantity.value(values[name]) < 0:
                    shown = quantity.canonical(values[name])
                    out.append(errors.cause(f"{path}.{kind}[{name}]",
                                            f'Invalid value: "{shown}": must be greater than or equal to 0'))
            except (ValueError, ArithmeticError):
                continue  # a malformed quantity is the decoder's error
    for name in sorted(requests):
        # extended resources (a domain, not kubernetes.io) and hugepages cannot be overcommitted
        exact = name.startswith("hugepages-") or ("/" in name and "kubernetes.io/" not in name)
        if name not in limits:
            if exact:
                out.append(errors.required(f"{path}.limits") |
                           {"message": "Required value: Limit must be set for non overcommitable resources"})
            continue
        try:
            req, lim = quantity.value(requests[name]), quantity.value(limits[name])
        except (ValueError, ArithmeticError):
            continue
        shown = f'Invalid value: "{quantity.canonical(requests[name])}": '
        if exact and req != lim:
            out.append(errors.cause(f"{path}.requests", shown + f"must be equal to {name} limit of "
                                    f"{quantity.canonical(limits[name])}"))
        elif req > lim:
            out.append(errors.cause(f"{path}.requests", shown + f"must be less than or equal to {name} limit of "
                                    f"{quantity.canonical(limits[name])}"))
    return out


# the orders upstream's validation lists them in (pkg/apis/core/validation)
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PROTOCOLS = ("SCTP", "TCP", "UDP")
SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def not_supported(field: str, value: Any, supported: tuple[str, ...]) -> Cause:
    """field.NotSupported: `Unsupported value: "X": supported values: "A", "B"`."""
    return errors.cause(field, f"Unsupported value: {_shown(value)}: supported values: "
                               + ", ".join(f'"{v}"' for v in supported), "FieldValueNotSupported")


def validate_container_ports(ports: Any, path: str) -> list[Cause]:
    """validateContainerPorts: names, containerPort (required), hostPort, protocol."""
    out: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports if isinstance(ports, list) else []):
        if not isinstance(port, dict):
            continue
        p = f"{path}[{i}]"
        name = port.get("name")
        if isinstance(name, str) and name:
            bad = port_name_causes(name, f"{p}.name")
            if bad:
                out.extend(bad)
            elif name in names:
                out.append(errors.cause(f"{p}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
            names.add(name)
        cp = port.get("containerPort")
        if not cp:
            out.append(errors.required(f"{p}.containerPort"))
        else:
            out.extend(port_number_causes(cp, f"{p}.containerPort"))
        hp = port.get("hostPort")
        if hp:
            out.extend(port_number_causes(hp, f"{p}.hostPort"))
        proto = port.get("protocol")
        if proto is not None and proto not in PROTOCOLS:
            out.append(not_supported(f"{p}.protocol", proto, PROTOCOLS))
    return out


class PodStrategy(Strategy):
    has_status = True
    field_labels = ("metadata.uid", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                    "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                    "status.podIPs", "status.nominatedNodeName", "spec.host")
    field_label_aliases = {"spec.host": "spec.nodeName"}  # what old v1 clients send
    return_deleted_object = True  # as upstream's pod and namespace storage

    def default(self, obj: Obj) -> None:
        default_pod_spec(obj.setdefault("spec", {}))
        spec = obj["spec"]
        default_pod_only(spec)
        mirror = meta.MIRROR_POD_ANNOTATION in ((obj.get("metadata") or {}).get("annotations") or {})
        if "serviceAccountName" not in spec and not mirror:  # a static pod's mirror gets none (the SA plugin)
            spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        if spec.get("serviceAccountName"):
            spec.setdefault("serviceAccount", spec["serviceAccountName"])
        tol = spec.setdefault("tolerations", [])
        # the DefaultTolerationSeconds admission plugin: unless a toleration covers the taint
        # (its key, or none), with effect NoExecute or none
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") in (key, None, "") and t.get("effect") in ("NoExecute", None, "")
                       for t in tol):
                tol.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                            "tolerationSeconds": 300})
        # spec.priority and preemptionPolicy are the Priority admission plugin's (at create)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        # the Priority admission plugin on update: an update that leaves them out keeps the
        # values it set at create (so `kubectl replace -f pod.yaml` is not a forbidden change)
        ns, os_ = new.setdefault("spec", {}), old.get("spec") or {}
        for key in ("priority", "preemptionPolicy"):
            if ns.get(key) is None and os_.get(key) is not None:
                ns[key] = os_[key]

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj["spec"])}
        if obj["spec"].get("schedulingGates"):  # applySchedulingGatedCondition
            obj["status"]["conditions"] = [{
                "type": "PodScheduled", "status": "False", "lastProbeTime": None,
                "lastTransitionTime": meta.now(), "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates"}]

    def validate(self, obj: Obj, *, old: Obj | None = None) -> list[Cause]:
        out = validate_pod_spec(obj.get("spec"), "spec") + validate_pod_only(obj.get("spec"), create=old is None)
        if old is not None:
            # a pod stored before a check existed stays updatable (labels, finalizers): its
            # spec is immutable, so only faults the old spec did not have count
            before = {(c["field"], c["message"]) for c in validate_pod_spec(old.get("spec"), "spec")}
            out = [c for c in out if (c["field"], c["message"]) not in before]
        # an update keeps a deletion cost that was already invalid (upstream's
        # AllowInvalidPodDeletionCost for old objects)
        if old is None or deletion_cost_valid((old.get("metadata") or {}).get("annotations")):
            out.extend(validate_deletion_cost((obj.get("metadata") or {}).get("annotations"), "metadata.annotations"))
        spec = obj.get("spec") or {}
        if spec.get("schedulingGates") and spec.get("nodeName"):
            out.append(errors.cause("spec.nodeName", "Forbidden: cannot be set until all schedulingGates have "
                                                     "been cleared", "FieldValueForbidden"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new, old=old)
        ns, os_ = new.get("spec", {}), old.get("spec", {})
        # only images, activeDeadlineSeconds, tolerations (additions) may change; scheduling
        # gates may be removed, and while a pod is gated its nodeSelector may gain keys
        gated = bool(os_.get("schedulingGates"))
        new_gates = [g.get("name") for g in ns.get("schedulingGates") or [] if isinstance(g, dict)]
        old_gates = [g.get("name") for g in os_.get("schedulingGates") or [] if isinstance(g, dict)]
        for i, g in enumerate(new_gates):
            if g not in old_gates:
                out.append(errors.cause(f"spec.schedulingGates[{i}]", f"Forbidden: only deletion is allowed, but "
                                        f"found new scheduling gate '{g}'", "FieldValueForbidden"))
        old_sel = os_.get("nodeSelector") or {}
        selector_added = gated and all((ns.get("nodeSelector") or {}).get(k) == v for k, v in old_sel.items())

        def strip(spec: Obj) -> Obj:
            s = copy.deepcopy(spec)
            s.pop("schedulingGates", None)
            if selector_added:
                s.pop("nodeSelector", None)
            for c in (s.get("containers") or []) + (s.get("initContainers") or []):
                c.pop("image", None)
            s.pop("activeDeadlineSeconds", None)
            s.pop("tolerations", None)
            s.pop("terminationGracePeriodSeconds", None)
            return s
        if strip(ns) != strip(os_):
            out.append(errors.cause("spec", "Forbidden: pod updates may not change fields other than "
                                            "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                                            "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
                                            "to existing tolerations),`spec.terminationGracePeriodSeconds` "
                                            "(allow it to be set to 1 if it was previously negative)",
                                    "FieldValueForbidden"))
        return out

    # -- pods/ephemeralcontainers (kubectl debug) ---------------------------------
    def prepare_for_ephemeral_update(self, new: Obj, old: Obj) -> Obj:
        """Only spec.ephemeralContainers changes through the subresource."""
        out = copy.deepcopy(old)
        eph = copy.deepcopy((new.get("spec") or {}).get("ephemeralContainers") or [])
        for c in eph:
            if isinstance(c, dict):
                default_container(c)
        if eph:
            out["spec"]["ephemeralContainers"] = eph
        else:
            out["spec"].pop("ephemeralContainers", None)
        out["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get("resourceVersion")
        return out

    def validate_ephemeral_update(self, new: Obj, old: Obj) -> list[Cause]:
        """validateEphemeralContainers and ValidatePodEphemeralContainersUpdate."""
        out: list[Cause] = []
        spec = new.get("spec") or {}
        names = {c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])}
        targets = {c.get("name") for c in spec.get("containers") or []}
        for i, c in enumerate(spec.get("ephemeralContainers") or []):
            p = f"spec.ephemeralContainers[{i}]"
            if not isinstance(c, dict):
                continue
            out.extend(_name_and_image(c, p, names))
            for field in ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources",
                          "resizePolicy", "restartPolicy"):
                if c.get(field):
                    out.append(errors.cause(f"{p}.{field}", "Forbidden: cannot be set for an Ephemeral Container",
                                            "FieldValueForbidden"))
            target = c.get("targetContainerName")
            if target and target not in targets:
                out.append(errors.cause(f"{p}.targetContainerName", f'Not found: "{target}"', "FieldValueNotFound"))
        out.extend(validate_ephemeral_containers(spec, None, "spec"))
        new_by_name = {c.get("name"): c for c in spec.get("ephemeralContainers") or [] if isinstance(c, dict)}
        for c in (old.get("spec") or {}).get("ephemeralContainers") or []:
            name = c.get("name")
            if name not in new_by_name:
                out.append(errors.cause("spec.ephemeralContainers", f'Forbidden: existing ephemeral containers '
                                        f'"{name}" may not be removed', "FieldValueForbidden"))
            elif new_by_name[name] != c:
                out.append(errors.cause("spec.ephemeralContainers", f'Forbidden: existing ephemeral containers '
                                        f'"{name}" may not be changed', "FieldValueForbidden"))
        return out

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        # an unscheduled pod has no kubelet to wait for (pkg/registry/core/pod/strategy.go)
        if not obj.get("spec", {}).get("nodeName"):
            return 0
        if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(requested, 0)
        return int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30))


class NodeStrategy(Strategy):
    has_status = True
    field_labels = ("spec.unschedulable",)

    def prepare_for_create(self, obj: Obj) -> None:
        # kubelets create their Node with status; upstream keeps it on create too
        self.default(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_taints((obj.get("spec") or {}).get("taints"), "spec.taints")


class NamespaceStrategy(Strategy):
    has_status = True
    field_labels = ("status.phase",)
    return_deleted_object = True  # as upstream's pod and namespace storage
    name_validator = staticmethod(validate_dns_label)
    # NamespaceLifecycle's immortal namespaces (kube-node-lease is not one upstream)
    undeletable = dict.fromkeys(("default", "kube-system", "kube-public"), "this namespace may not be deleted")

    def default(self, obj: Obj) -> None:
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        meta = obj.setdefault("metadata", {})
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"phase": "Active"}

    def holds_deletion(self, obj: Obj) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def mark_deleting(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    def prepare_for_finalize(self, new: Obj, old: Obj) -> Obj:
        """/finalize changes only spec.finalizers (pkg/registry/core/namespace)."""
        out = copy.deepcopy(old)
        out.setdefault("spec", {})["finalizers"] = list((new.get("spec") or {}).get("finalizers") or [])
        out["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get("resourceVersion")
        return out


class ServiceStrategy(Strategy):
    has_status = True
    name_validator = staticmethod(validate_dns_label)
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry
    field_labels = ("spec.clusterIP", "spec.type")  # service SelectableFields (since 1.29)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"loadBalancer": {}}  # Go's zero ServiceStatus, as upstream answers

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """patchAllocatedValues and NormalizeClusterIPs (pkg/registry/core/service): an
        update that leaves out the allocated addresses and node ports keeps them (`kubectl
        replace` of a manifest, a PUT of the object a client built), and a change of
        the singular clusterIP is a change of clusterIPs[0]."""
        super().prepare_for_update(new, old)
        spec, ospec = new.setdefault("spec", {}), old.get("spec") or {}
        if "ExternalName" not in (spec.get("type"), ospec.get("type")):
            if not spec.get("clusterIP") and ospec.get("clusterIP"):
                spec["clusterIP"] = ospec["clusterIP"]
            if not spec.get("clusterIPs") and ospec.get("clusterIPs"):
                spec["clusterIPs"] = list(ospec["clusterIPs"])
            if spec.get("clusterIP") != ospec.get("clusterIP") and spec.get("clusterIPs") == ospec.get("clusterIPs") \
                    and spec.get("clusterIPs"):
                spec["clusterIPs"] = [spec["clusterIP"], *spec["clusterIPs"][1:]]
        node_ports = ("NodePort", "LoadBalancer")
        if ospec.get("type") in node_ports and spec.get("type") not in node_ports:
            # dropTypeDependentFields: what only an externally reachable Service has goes
            # with the type, unless the update itself set it
            old_np = {(op.get("port"), op.get("protocol", "TCP")): op.get("nodePort")
                      for op in ospec.get("ports") or []}
            for p in spec.get("ports") or []:
                if isinstance(p, dict) and p.get("nodePort") and \
                        old_np.get((p.get("port"), p.get("protocol", "TCP"))) == p["nodePort"]:
                    del p["nodePort"]
            for field in ("externalTrafficPolicy", "healthCheckNodePort"):
                if field in spec and spec.get(field) == ospec.get(field):
                    del spec[field]
        if spec.get("type") in node_ports and ospec.get("type") in node_ports:
            for p in spec.get("ports") or []:
                if isinstance(p, dict) and not p.get("nodePort"):
                    for op in ospec.get("ports") or []:
                        if op.get("port") == p.get("port") and op.get("protocol", "TCP") == p.get("protocol", "TCP") \
                                and op.get("nodePort"):
                            p["nodePort"] = op["nodePort"]
                            break
            if not spec.get("healthCheckNodePort") and ospec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = ospec["healthCheckNodePort"]

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        spec, ospec = new.get("spec") or {}, old.get("spec") or {}
        if "ExternalName" in (spec.get("type"), ospec.get("type")):
            return out
        if spec.get("clusterIP") == "None" and ospec.get("clusterIP") == "None":
            return out
        ips, old_ips = list(spec.get("clusterIPs") or []), list(ospec.get("clusterIPs") or [])
        if len(ips) == len(old_ips):
            shown = "[]string{" + ", ".join(f'"{ip}"' for ip in ips) + "}"
            for i, ip in enumerate(old_ips):
                if ips[i] != ip:
                    out.append(errors.cause(f"spec.clusterIPs[{i}]", f"Invalid value: {shown}: may not change "
                                            "once set"))
        return out

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["sessionAffinity"] == "None":
            spec.pop("sessionAffinityConfig", None)
        elif spec["sessionAffinity"] == "ClientIP":
            cfg = spec.get("sessionAffinityConfig")
            if not isinstance(cfg, dict) or not isinstance(cfg.get("clientIP"), dict) \
                    or cfg["clientIP"].get("timeoutSeconds") is None:
                spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            if p.get("targetPort") in (None, 0, "") and "port" in p:
                p["targetPort"] = p["port"]

    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        spec = obj.get("spec") or {}
        if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None" and not spec.get("ports"):
            out.append(errors.required("spec.ports"))
        type_ = spec.get("type")
        if type_ is not None and type_ not in SERVICE_TYPES:
            out.append(not_supported("spec.type", type_, SERVICE_TYPES))
        affinity = spec.get("sessionAffinity")
        if affinity is not None and affinity not in SESSION_AFFINITIES:
            out.append(not_supported("spec.sessionAffinity", affinity, SESSION_AFFINITIES))
        for i, p in enumerate(spec.get("ports") or []):
            if not isinstance(p, dict):
                continue
            out.extend(port_number_causes(p.get("port"), f"spec.ports[{i}].port"))
            if p.get("nodePort") and type_ in ("ClusterIP", None):
                out.append(errors.cause(f"spec.ports[{i}].nodePort", "Forbidden: may not be used when `type` is "
                                        "'ClusterIP'", "FieldValueForbidden"))
            proto = p.get("protocol")
            if proto is not None and proto not in PROTOCOLS:
                out.append(not_supported(f"spec.ports[{i}].protocol", proto, PROTOCOLS))
            target = p.get("targetPort")
            if isinstance(target, str) and target and not target.isdigit():
                out.extend(port_name_causes(target, f"spec.ports[{i}].targetPort"))
            elif target is not None:
                out.extend(port_number_causes(int(target) if isinstance(target, str) else target,
                                              f"spec.ports[{i}].targetPort"))
        return out


class ServiceAccountStrategy(Strategy):
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        binary = obj.get("binaryData") or {}
        for field, keys in (("data", list((obj.get("data") or {}).keys())), ("binaryData", list(binary.keys()))):
            for k in keys:
                if not k or len(k) > 253 or not _CONFIG_KEY.fullmatch(k):
                    out.append(errors.cause(f"{field}[{k}]", f'Invalid value: "{k}": a valid config key must '
                                            "consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', "
                                            " or 'KEY_NAME',  or 'key-name', regex used for validation is "
                                            "'[-._a-zA-Z0-9]+')"))
                if field == "data" and k in binary:
                    out.append(errors.cause(f"data[{k}]", f'Invalid value: "{k}": duplicate of key present in '
                                            "binaryData"))
        return out

    # the fields `immutable: true` freezes (ValidateConfigMapUpdate / ValidateSecretUpdate)
    frozen: tuple[str, ...] = ("data", "binaryData")

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out: list[Cause] = []
        if old.get("immutable") is True:
            frozen = "Forbidden: field is immutable when `immutable` is set"
            if new.get("immutable") is not True:
                out.append(errors.cause("immutable", frozen, "FieldValueForbidden"))
            for field in self.frozen:
                if (new.get(field) or None) != (old.get(field) or None):
                    out.append(errors.cause(field, frozen, "FieldValueForbidden"))
        return out + self.validate(new)


# what a Secret of each type must hold (ValidateSecret)
_SECRET_KEYS = {"kubernetes.io/tls": ("tls.crt", "tls.key"), "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
                "kubernetes.io/dockercfg": (".dockercfg",), "kubernetes.io/ssh-auth": ("ssh-privatekey",)}


def _secret_bytes(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value or ""), validate=False)
    except (ValueError, binascii.Error):
        return b""


class SecretStrategy(ConfigMapStrategy):
    field_labels = ("type",)
    frozen = ("data",)

    def validate(self, obj: Obj) -> list[Cause]:
        out = super().validate(obj)
        data = obj.get("data") or {}
        type_ = obj.get("type")
        for key in _SECRET_KEYS.get(str(type_), ()):
            if key not in data or (key == "ssh-privatekey" and not data[key]):
                out.append(errors.required(f"data[{key}]"))
        if type_ == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
            out += [errors.required("data[username]"), errors.required("data[password]")]
        for key in (".dockerconfigjson", ".dockercfg"):
            if type_ == f"kubernetes.io/{key[1:]}" and key in data:
                # json.Unmarshal into a map, its error quoted (ValidateSecret)
                why = gojson.unmarshal_map_error(_secret_bytes(data[key]))
                if why is not None:
                    out.append(errors.cause(f"data[{key}]", f'Invalid value: "<secret contents redacted>": {why}'))
        if sum(len(_secret_bytes(v)) for v in data.values()) > 1024 * 1024:
            out.append(errors.cause("data", "Too long: may not be more than 1048576 bytes", "FieldValueTooLong"))
        if type_ == "kubernetes.io/service-account-token" and \
                not ((obj.get("metadata") or {}).get("annotations") or {}).get("kubernetes.io/service-account.name"):
            out.append(errors.required("metadata.annotations[kubernetes.io/service-account.name]"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out: list[Cause] = []
        if new.get("type") != old.get("type"):
            out.append(errors.cause("type", f'Invalid value: "{new.get("type")}": field is immutable'))
        return out + super().validate_update(new, old)

    def default(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        # stringData is write-only: merged into data as base64
        sd = obj.pop("stringData", None)
        if sd:
            import base64

            data = obj.setdefault("data", {})
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()


class EventStrategy(Strategy):
    field_labels = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                    "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                    "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")


RESOURCES = [
    # no deletecollection: upstream's namespace REST has none (a namespace is removed through
    # its finalizer, one at a time)
    ResourceInfo("", "v1", "Namespace", "namespaces", False, "io.k8s.api.core.v1.Namespace",
                 short_names=("ns",), subresources=("status", "finalize"), strategy=NamespaceStrategy(),
                 verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    ResourceInfo("", "v1", "Node", "nodes", False, "io.k8s.api.core.v1.Node",
                 short_names=("no",), subresources=("status", "proxy"), strategy=NodeStrategy()),
    ResourceInfo("", "v1", "Pod", "pods", True, "io.k8s.api.core.v1.Pod", short_names=("po",),
                 categories=("all",), subresources=("status", "binding", "log", "eviction", "exec",
                                                    "attach", "portforward", "proxy", "ephemeralcontainers"),
                 strategy=PodStrategy()),
    # the legacy `bindings` collection (LegacyBindingREST): POST a Binding named after the pod,
    # as pods/<name>/binding does; create only, never stored (rest.handle)
    ResourceInfo("", "v1", "Binding", "bindings", True, "io.k8s.api.core.v1.Binding", verbs=("create",),
                 strategy=Strategy()),
    ResourceInfo("", "v1", "Event", "events", True, "io.k8s.api.core.v1.Event", short_names=("ev",),
                 strategy=EventStrategy()),
    ResourceInfo("", "v1", "ConfigMap", "configmaps", True, "io.k8s.api.core.v1.ConfigMap",
                 short_names=("cm",), strategy=ConfigMapStrategy()),
    ResourceInfo("", "v1", "Secret", "secrets", True, "io.k8s.api.core.v1.Secret",
                 strategy=SecretStrategy()),
    ResourceInfo("", "v1", "Service", "services", True, "io.k8s.api.core.v1.Service",
                 short_names=("svc",), categories=("all",), subresources=("status", "proxy"),
                 strategy=ServiceStrategy()),
    ResourceInfo("", "v1", "ServiceAccount", "serviceaccounts", True,
                 "io.k8s.api.core.v1.ServiceAccount", short_names=("sa",), subresources=("token",),
                 strategy=ServiceAccountStrategy()),
]


def _name_and_image(c: dict[str, Any], p: str, names: set[str]) -> list[dict[str, Any]]:
    """A container's (or ephemeral container's) name — required, a DNS label, unique
    among the pod's (`names`, which it is added to) — and its required image."""
    out: list[dict[str, Any]] = []
    name = c.get("name")
    if not name:
        out.append(errors.required(f"{p}.name"))
    else:
        out.extend(validate_dns_label(name, f"{p}.name"))
        if name in names:
            out.append(errors.cause(f"{p}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
        names.add(name)
    if not c.get("image"):
        out.append(errors.required(f"{p}.image"))
    return out
