"""storage.k8s.io/v1 StorageClass, CSIDriver, CSINode, CSIStorageCapacity and VolumeAttachment:
defaults (pkg/apis/storage/v1/defaults.go) and basic validation. Provisioning
and attaching come with later work."""

from __future__ import annotations

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors

GROUP = "storage.k8s.io"


def _immutable(new: Obj, old: Obj, *fields: str) -> list[Cause]:
    return [errors.cause(f, "Invalid value: ...: field is immutable" if f != "parameters" else
                         "Forbidden: updates to parameters are forbidden.")
            for f in fields if new.get(f) != old.get(f)]


class StorageClassStrategy(Strategy):
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry
    def default(self, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        if not obj.get("provisioner"):
            out.append(errors.required("provisioner"))
        rp = obj.get("reclaimPolicy")
        if rp not in ("Delete", "Retain"):
            out.append(errors.cause("reclaimPolicy", f'Unsupported value: "{rp}": supported values: "Delete", '
                                    '"Retain"', "FieldValueNotSupported"))
        mode = obj.get("volumeBindingMode")
        if mode not in ("Immediate", "WaitForFirstConsumer"):
            out.append(errors.cause("volumeBindingMode", f'Unsupported value: "{mode}": supported values: '
                                    '"Immediate", "WaitForFirstConsumer"', "FieldValueNotSupported"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return self.validate(new) + _immutable(new, old, "parameters", "provisioner", "reclaimPolicy",
                                               "volumeBindingMode")


class CSIDriverStrategy(Strategy):
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry
    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("attachRequired", True)
        spec.setdefault("podInfoOnMount", False)
        spec.setdefault("storageCapacity", False)
        spec.setdefault("fsGroupPolicy", "ReadWriteOnceWithFSType")
        spec.setdefault("requiresRepublish", False)
        spec.setdefault("seLinuxMount", False)
        spec.setdefault("volumeLifecycleModes", ["Persistent"])


class CSINodeStrategy(Strategy):
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry
    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        seen: set[str] = set()
        for i, d in enumerate((obj.get("spec") or {}).get("drivers") or []):
            name = d.get("name")
            if not name:
                out.append(errors.required(f"spec.drivers[{i}].name"))
            elif name in seen:
                out.append(errors.cause(f"spec.drivers[{i}].name", f'Duplicate value: "{name}"',
                                        "FieldValueDuplicate"))
            seen.add(name or "")
            if not d.get("nodeID"):
                out.append(errors.required(f"spec.drivers[{i}].nodeID"))
        return out


class VolumeAttachmentStrategy(Strategy):
    return_deleted_object = True  # ReturnDeletedObject in upstream's registry
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"attached": False}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        out = [errors.required(f"spec.{f}") for f in ("attacher", "nodeName") if not spec.get(f)]
        src = spec.get("source") or {}
        if bool(src.get("persistentVolumeName")) == bool(src.get("inlineVolumeSpec")):
            out.append(errors.cause("spec.source", "Invalid value: ...: must specify exactly one of "
                                    "persistentVolumeName and inlineVolumeSpec"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        if new.get("spec") != old.get("spec"):
            out.append(errors.cause("spec", "Invalid value: ...: field is immutable"))
        return out


class CSIStorageCapacityStrategy(Strategy):
    """What a CSI driver publishes for the scheduler (ValidateCSIStorageCapacity[Update]):
    kybern's local-path provisioner publishes none, but the kind is served as upstream."""

    def validate(self, obj: Obj) -> list[Cause]:
        return [] if obj.get("storageClassName") else [errors.required("storageClassName")]

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        # the inputs of the driver's GetCapacity call are immutable
        out = self.validate(new) + _immutable(new, old, "nodeTopology")
        if new.get("storageClassName") != old.get("storageClassName"):
            out.append(errors.cause("storageClassName",
                                    f'Invalid value: "{new.get("storageClassName") or ""}": field is immutable'))
        return out


RESOURCES = [
    ResourceInfo(GROUP, "v1", "StorageClass", "storageclasses", False, "io.k8s.api.storage.v1.StorageClass",
                 short_names=("sc",), strategy=StorageClassStrategy()),
    ResourceInfo(GROUP, "v1", "CSIDriver", "csidrivers", False, "io.k8s.api.storage.v1.CSIDriver",
                 strategy=CSIDriverStrategy()),
    ResourceInfo(GROUP, "v1", "CSINode", "csinodes", False, "io.k8s.api.storage.v1.CSINode",
                 strategy=CSINodeStrategy()),
    ResourceInfo(GROUP, "v1", "CSIStorageCapacity", "csistoragecapacities", True,
                 "io.k8s.api.storage.v1.CSIStorageCapacity", strategy=CSIStorageCapacityStrategy()),
    ResourceInfo(GROUP, "v1", "VolumeAttachment", "volumeattachments", False,
                 "io.k8s.api.storage.v1.VolumeAttachment", subresources=("status",),
                 strategy=VolumeAttachmentStrategy()),
]
