"""core/v1 kinds beyond the walking skeleton: Endpoints, PersistentVolume,
PersistentVolumeClaim, ResourceQuota, LimitRange, PodTemplate and
ReplicationController, with the defaults of pkg/apis/core/v1/defaults.go and
basic validation. (core.py holds the skeleton's kinds; their controllers come
with later work.)"""

from __future__ import annotations

import json
import posixpath

from kybern.api.core import default_pod_spec, validate_pod_template
from kybern.api.quota_validation import validate_quota_spec, validate_quota_update
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors, quantity

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


def _access_modes(modes: object, path: str) -> list[Cause]:
    out: list[Cause] = []
    if not modes:
        return [errors.required(path) | {"message": "Required value: at least 1 access mode is required"}]
    for m in modes if isinstance(modes, list) else []:
        if m not in ACCESS_MODES:
            out.append(errors.cause(path, f'Unsupported value: "{m}": supported values: "ReadOnlyMany", '
                                    '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
                                    "FieldValueNotSupported"))
    return out


class EndpointsStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        for ss in obj.get("subsets") or []:
            for p in ss.get("ports") or []:
                p.setdefault("protocol", "TCP")


class PersistentVolumeStrategy(Strategy):
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry
    has_status = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        if isinstance(spec.get("hostPath"), dict):
            spec["hostPath"].setdefault("type", "")  # SetDefaults_HostPathVolumeSource

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"phase": "Pending"}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        out = _access_modes(spec.get("accessModes"), "spec.accessModes")
        capacity = spec.get("capacity")
        if not capacity:
            # upstream reports both, the second with Go's %#v of the empty ResourceList
            out.append(errors.required("spec.capacity"))
            shown = "core.ResourceList{}" if isinstance(capacity, dict) else "core.ResourceList(nil)"
            out.append(errors.cause("spec.capacity", f'Unsupported value: {shown}: supported values: "storage"',
                                    "FieldValueNotSupported"))
        elif not isinstance(capacity, dict) or "storage" not in capacity or len(capacity) > 1:
            out.append(errors.cause("spec.capacity", 'Unsupported value: supported values: "storage"',
                                    "FieldValueNotSupported"))
        sources = [k for k in spec if k in ("hostPath", "local", "nfs", "csi", "iscsi", "fc", "cephfs", "rbd",
                                             "awsElasticBlockStore", "gcePersistentDisk", "azureDisk",
                                             "azureFile", "flexVolume", "glusterfs", "portworxVolume",
                                             "vsphereVolume", "quobyte", "scaleIO", "storageos", "photonPersistentDisk",
                                             "cinder", "flocker")]
        storage = (spec.get("capacity") or {}).get("storage")
        if storage:
            out.extend(_positive_quantity(storage, "spec.capacity[storage]"))
        policy = spec.get("persistentVolumeReclaimPolicy")
        if policy and policy not in ("Delete", "Recycle", "Retain"):
            out.append(errors.cause("spec.persistentVolumeReclaimPolicy", f'Unsupported value: "{policy}": '
                                    'supported values: "Delete", "Recycle", "Retain"', "FieldValueNotSupported"))
        if not sources:
            out.append(errors.required("spec") | {"message": "Required value: must specify a volume type"})
        elif len(sources) > 1:
            out.append(errors.cause(f"spec.{sources[1]}", "Forbidden: may not specify more than 1 volume type",
                                    "FieldValueForbidden"))
        host = spec.get("hostPath")
        if isinstance(host, dict) and isinstance(host.get("path"), str):
            if ".." in host["path"].split("/"):  # validatePathNoBacksteps
                out.append(errors.cause("spec.hostPath.path", f"Invalid value: {json.dumps(host['path'])}: must not "
                                        "contain '..'"))
            if posixpath.normpath(host["path"] or ".") == "/" and policy == "Recycle":
                out.append(errors.cause("spec.persistentVolumeReclaimPolicy", "Forbidden: may not be 'recycle' for "
                                        "a hostPath mount of '/'", "FieldValueForbidden"))
        return out


def _positive_quantity(q: object, path: str) -> list[Cause]:
    """ValidatePositiveQuantityValue."""
    try:
        if quantity.value(q) <= 0:
            return [errors.cause(path, f'Invalid value: "{quantity.canonical(q)}": must be greater than zero')]
    except (ValueError, ArithmeticError, TypeError):
        pass  # a malformed quantity is the decoder's error
    return []


class PersistentVolumeClaimStrategy(Strategy):
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry
    has_status = True

    def default(self, obj: Obj) -> None:
        obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"phase": "Pending"}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        out = _access_modes(spec.get("accessModes"), "spec.accessModes")
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if not storage:
            out.append(errors.required("spec.resources[storage]"))
        else:
            out.extend(_positive_quantity(storage, "spec.resources[storage]"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        ns, os_ = dict(new.get("spec") or {}), dict(old.get("spec") or {})
        for s in (ns, os_):  # only requests (expansion), volumeName binding and attributes class may change
            s.pop("resources", None)
            s.pop("volumeAttributesClassName", None)
        if not os_.get("volumeName"):
            ns.pop("volumeName", None)
            os_.pop("volumeName", None)
        if os_.get("storageClassName") is None:  # unset -> set is allowed since 1.28 (retroactive default)
            ns.pop("storageClassName", None)
            os_.pop("storageClassName", None)
        if ns != os_:
            out.append(errors.cause("spec", "Forbidden: spec is immutable after creation except "
                                    "resources.requests and volumeAttributesClassName for bound claims",
                                    "FieldValueForbidden"))
        return out


class ResourceQuotaStrategy(Strategy):
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_quota_spec(obj.get("spec"))

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return self.validate(new) + validate_quota_update(new.get("spec"), old.get("spec"))


class LimitRangeStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        """SetDefaults_LimitRangeItem: a Container item's default limit is its max, its
        default request its default limit, else its min."""
        for item in (obj.get("spec") or {}).get("limits") or []:
            if not isinstance(item, dict) or item.get("type") != "Container":
                continue
            default = item.setdefault("default", {})
            request = item.setdefault("defaultRequest", {})
            for k, v in (item.get("max") or {}).items():
                default.setdefault(k, v)
            for k, v in default.items():
                request.setdefault(k, v)
            for k, v in (item.get("min") or {}).items():
                request.setdefault(k, v)
            for field in ("default", "defaultRequest"):  # empty maps are omitted, as Go's omitempty
                if not item[field]:
                    del item[field]

    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        for i, lim in enumerate((obj.get("spec") or {}).get("limits") or []):
            t = lim.get("type")
            if t not in ("Container", "Pod", "PersistentVolumeClaim"):
                out.append(errors.cause(f"spec.limits[{i}].type", f'Unsupported value: "{t}": supported values: '
                                        '"Container", "Pod", "PersistentVolumeClaim"', "FieldValueNotSupported"))
        return out


class PodTemplateStrategy(Strategy):
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry

    def default(self, obj: Obj) -> None:
        tmpl = obj.setdefault("template", {})
        tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(tmpl.setdefault("spec", {}))

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_pod_template(obj.get("template"), "template")


class ReplicationControllerStrategy(Strategy):
    has_status = True
    tracks_generation = True
    field_labels = ("status.replicas",)
    default_gc_policy = "Orphan"  # core/v1's, kept for compatibility upstream

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        tmpl = spec.setdefault("template", {})
        labels = (tmpl.get("metadata") or {}).get("labels") or {}
        if not spec.get("selector"):  # SetDefaults_ReplicationController: selector from template labels
            spec["selector"] = dict(labels)
        meta = obj.setdefault("metadata", {})
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
        spec.setdefault("replicas", 1)
        spec.setdefault("minReadySeconds", 0)
        tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(tmpl.setdefault("spec", {}))

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"replicas": 0}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        sel = spec.get("selector") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        out: list[Cause] = []
        if not sel:
            out.append(errors.required("spec.selector"))
        elif any(labels.get(k) != v for k, v in sel.items()):
            out.append(errors.cause("spec.template.metadata.labels", "Invalid value: ...: `selector` does not "
                                    "match template `labels`"))
        out += validate_pod_template(spec.get("template"), "spec.template")
        return out


RESOURCES = [
    ResourceInfo("", "v1", "Endpoints", "endpoints", True, "io.k8s.api.core.v1.Endpoints", short_names=("ep",),
                 strategy=EndpointsStrategy()),
    ResourceInfo("", "v1", "PersistentVolume", "persistentvolumes", False, "io.k8s.api.core.v1.PersistentVolume",
                 short_names=("pv",), subresources=("status",), strategy=PersistentVolumeStrategy()),
    ResourceInfo("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True,
                 "io.k8s.api.core.v1.PersistentVolumeClaim", short_names=("pvc",), subresources=("status",),
                 strategy=PersistentVolumeClaimStrategy()),
    ResourceInfo("", "v1", "ResourceQuota", "resourcequotas", True, "io.k8s.api.core.v1.ResourceQuota",
                 short_names=("quota",), subresources=("status",), strategy=ResourceQuotaStrategy()),
    ResourceInfo("", "v1", "LimitRange", "limitranges", True, "io.k8s.api.core.v1.LimitRange",
                 short_names=("limits",), strategy=LimitRangeStrategy()),
    ResourceInfo("", "v1", "PodTemplate", "podtemplates", True, "io.k8s.api.core.v1.PodTemplate",
                 strategy=PodTemplateStrategy()),
    ResourceInfo("", "v1", "ReplicationController", "replicationcontrollers", True,
                 "io.k8s.api.core.v1.ReplicationController", short_names=("rc",), categories=("all",),
                 subresources=("status", "scale"), strategy=ReplicationControllerStrategy()),
]
