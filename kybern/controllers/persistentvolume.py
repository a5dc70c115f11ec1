"""The PersistentVolume binder (upstream pkg/controller/volume/persistentvolume):
pairs PersistentVolumeClaims with PersistentVolumes and keeps both sides'
phase right.

Claims: an unbound claim takes the smallest Available volume that fits (same
storageClassName, its access modes, enough capacity, the claim's selector) or a
volume pre-bound to it by claimRef; failing that, a claim of a class with a
provisioner is handed to it (the `volume.kubernetes.io/storage-provisioner`
annotation) — at once for Immediate classes, once a pod using it has a node
(`volume.kubernetes.io/selected-node`) for WaitForFirstConsumer. Binding writes
the volume's claimRef and phase Bound, then the claim's volumeName, the
`pv.kubernetes.io/bind-completed` annotation and phase Bound. A claim whose
volume vanished is Lost. A claim with no class at all gets the default class
(retroactive default StorageClass assignment, 1.28+).

Volumes: no claimRef is Available; a claim that is gone (or has another uid)
makes the volume Released, and reclaimPolicy Delete then deletes it (the
provisioner that made it cleans up the storage first); Retain keeps it Released.
"""

from __future__ import annotations

import logging
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, STORAGECLASSES
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors, meta
from kybern.machinery.selectors import selector_matches
from kybern.node.quantity import parse_quantity

log = logging.getLogger(__name__)

BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def _request(pvc: dict[str, Any]) -> int:
    req = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    return int(parse_quantity(str(req))) if req else 0


def _capacity(pv: dict[str, Any]) -> int:
    cap = ((pv.get("spec") or {}).get("capacity") or {}).get("storage")
    return int(parse_quantity(str(cap))) if cap else 0


def class_of(obj: dict[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("storageClassName") or "")


def volume_fits(pv: dict[str, Any], pvc: dict[str, Any]) -> bool:
    """findMatchingVolume's tests for one volume (claimRef aside)."""
    pvs, cs = pv.get("spec") or {}, pvc.get("spec") or {}
    if class_of(pv) != class_of(pvc) or meta.is_deleting(pv):
        return False
    if (pvs.get("volumeMode") or "Filesystem") != (cs.get("volumeMode") or "Filesystem"):
        return False
    if not set(cs.get("accessModes") or []) <= set(pvs.get("accessModes") or []):
        return False
    if cs.get("selector") and not selector_matches(cs["selector"], pv["metadata"].get("labels") or {}):
        return False
    return _capacity(pv) >= _request(pvc)


def prebound_to(pv: dict[str, Any], pvc: dict[str, Any]) -> bool:
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    m = pvc["metadata"]
    return ref.get("name") == m["name"] and ref.get("namespace") == m.get("namespace") and \
        (not ref.get("uid") or ref.get("uid") == m["uid"])


def find_volume(pvs: list[dict[str, Any]], pvc: dict[str, Any]) -> dict[str, Any] | None:
    pre = [pv for pv in pvs if prebound_to(pv, pvc) and volume_fits(pv, pvc)]
    if pre:
        return pre[0]
    free = [pv for pv in pvs if not (pv.get("spec") or {}).get("claimRef") and volume_fits(pv, pvc)
            and (pv.get("status") or {}).get("phase") in (None, "", "Available")]
    return min(free, key=_capacity) if free else None


def claim_ref(pvc: dict[str, Any]) -> dict[str, Any]:
    m = pvc["metadata"]
    return {"kind": "PersistentVolumeClaim", "namespace": m.get("namespace"), "name": m["name"],
            "uid": m["uid"], "apiVersion": "v1", "resourceVersion": m.get("resourceVersion")}


class PersistentVolumeBinder:
    name = "persistentvolume-binder"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 2) -> None:
        self.client = client
        self.workers = workers
        self.pv_informer = informers.informer(PERSISTENTVOLUMES)
        self.pvc_informer = informers.informer(PERSISTENTVOLUMECLAIMS)
        self.sc_informer = informers.informer(STORAGECLASSES)
        self.queue = WorkQueue("persistentvolume-binder")
        self.recorder = EventRecorder(client, "persistentvolume-controller")
        self.pvc_informer.add_handler(self._on_pvc)
        self.pv_informer.add_handler(self._on_pv)

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    def _on_pvc(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self.queue.add("pvc:" + key_of(new))
        volume = (new.get("spec") or {}).get("volumeName")
        if typ == "DELETED" and volume:  # its volume is Released now (deleteClaim)
            self.queue.add("pv:" + volume)

    def _on_pv(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self.queue.add("pv:" + new["metadata"]["name"])
        ref = (new.get("spec") or {}).get("claimRef") or {}
        if ref.get("name"):
            self.queue.add(f"pvc:{ref.get('namespace')}/{ref['name']}")
        elif typ != "DELETED":  # a new free volume may serve a waiting claim
            for pvc in self.pvc_informer.list():
                if not (pvc.get("spec") or {}).get("volumeName"):
                    self.queue.add("pvc:" + key_of(pvc))

    async def reconcile(self, key: str) -> None:
        kind, _, k = key.partition(":")
        if kind == "pvc":
            pvc = self.pvc_informer.get(k)
            if pvc is not None and not meta.is_deleting(pvc):
                await self._sync_claim(pvc)
        else:
            pv = self.pv_informer.get(k)
            if pv is not None:
                await self._sync_volume(pv)

    def default_class(self) -> dict[str, Any] | None:
        defaults = [sc for sc in self.sc_informer.list()
                    if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
        # several defaults: the newest wins, as the DefaultStorageClass admission plugin
        return max(defaults, key=lambda sc: sc["metadata"].get("creationTimestamp") or "", default=None)

    # -- claims --------------------------------------------------------------------
    async def _sync_claim(self, pvc: dict[str, Any]) -> None:
        m = pvc["metadata"]
        spec = pvc.get("spec") or {}
        ns = m.get("namespace")
        if "storageClassName" not in spec and not spec.get("volumeName"):
            sc = self.default_class()
            if sc is not None:
                try:
                    await self.client.patch(PERSISTENTVOLUMECLAIMS, m["name"],
                                            {"spec": {"storageClassName": sc["metadata"]["name"]}}, ns)
                    return
                except errors.StatusError as e:
                    if e.code != 422:  # an apiserver refusing nil -> class: carry on without one
                        raise
        name = spec.get("volumeName")
        if name:
            pv = self.pv_informer.get(name) or await self._get_pv(name)
            if pv is None:
                if (pvc.get("status") or {}).get("phase") == "Bound":
                    await self._claim_phase(pvc, "Lost")
                    self.recorder.event(pvc, "Warning", "ClaimLost",
                                        "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
                return
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if not ref.get("uid") or ref.get("uid") == m["uid"]:
                await self._bind(pv, pvc)
            elif (pvc.get("status") or {}).get("phase") != "Lost":
                await self._claim_phase(pvc, "Lost")
            return
        pv = find_volume(self.pv_informer.list(), pvc)
        if pv is not None:
            await self._bind(pv, pvc)
            return
        cls = class_of(pvc)
        sc = self.sc_informer.get(cls) if cls else None
        if sc is None or not sc.get("provisioner") or sc.get("provisioner") == "kubernetes.io/no-provisioner":
            msg = ("no persistent volumes available for this claim and no storage class is set" if not cls
                   else f'storageclass.storage.k8s.io "{cls}" not found' if sc is None
                   else "no persistent volumes available for this claim")
            self.recorder.event(pvc, "Normal" if sc is not None else "Warning", "FailedBinding", msg)
            await self._claim_phase(pvc, "Pending")
            return
        annotations = m.get("annotations") or {}
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not annotations.get(SELECTED_NODE):
            self.recorder.event(pvc, "Normal", "WaitForFirstConsumer",
                                "waiting for first consumer to be created before binding")
            await self._claim_phase(pvc, "Pending")
            return
        if annotations.get(STORAGE_PROVISIONER) != sc["provisioner"]:
            await self.client.patch(PERSISTENTVOLUMECLAIMS, m["name"], {"metadata": {"annotations": {
                STORAGE_PROVISIONER: sc["provisioner"], BETA_STORAGE_PROVISIONER: sc["provisioner"]}}}, ns)
            self.recorder.event(pvc, "Normal", "ExternalProvisioning",
                                f"Waiting for a volume to be created either by the external provisioner "
                                f"'{sc['provisioner']}' or manually by the system administrator. If volume "
                                "creation is delayed, please verify that the provisioner is running and "
                                "correctly registered.")
        await self._claim_phase(pvc, "Pending")

    async def _get_pv(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(PERSISTENTVOLUMES, name)
        except errors.StatusError as e:
            if e.code == 404:
                return None
            raise

    async def _bind(self, pv: dict[str, Any], pvc: dict[str, Any]) -> None:
        """Volume side first (claimRef, Bound), then the claim, as upstream's bind()."""
        pm, cm = pv["metadata"], pvc["metadata"]
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("uid") != cm["uid"]:
            patch: dict[str, Any] = {"spec": {"claimRef": claim_ref(pvc)}}
            if not ref:
                patch["metadata"] = {"annotations": {BOUND_BY_CONTROLLER: "yes"}}
            patch.setdefault("metadata", {})["resourceVersion"] = pm.get("resourceVersion")
            pv = await self.client.patch(PERSISTENTVOLUMES, pm["name"], patch)
        if (pv.get("status") or {}).get("phase") != "Bound":
            pv = await self._volume_phase(pv, "Bound")
        cspec = pvc.get("spec") or {}
        ann = cm.get("annotations") or {}
        if cspec.get("volumeName") != pm["name"] or ann.get(BIND_COMPLETED) != "yes":
            cpatch: dict[str, Any] = {"spec": {"volumeName": pm["name"]},
                                      "metadata": {"annotations": {BIND_COMPLETED: "yes"}}}
            if not cspec.get("volumeName"):
                cpatch["metadata"]["annotations"][BOUND_BY_CONTROLLER] = "yes"
            pvc = await self.client.patch(PERSISTENTVOLUMECLAIMS, cm["name"], cpatch, cm.get("namespace"))
        st = pvc.get("status") or {}
        want = {"phase": "Bound", "accessModes": (pv.get("spec") or {}).get("accessModes") or [],
                "capacity": (pv.get("spec") or {}).get("capacity") or {}}
        if any(st.get(k) != v for k, v in want.items()):
            body = dict(pvc)
            body["status"] = {**st, **want}
            await self.client.update(PERSISTENTVOLUMECLAIMS, body, subresource="status")

    async def _claim_phase(self, pvc: dict[str, Any], phase: str) -> None:
        if (pvc.get("status") or {}).get("phase") == phase:
            return
        body = dict(pvc)
        body["status"] = {**(pvc.get("status") or {}), "phase": phase}
        try:
            await self.client.update(PERSISTENTVOLUMECLAIMS, body, subresource="status")
        except errors.StatusError as e:
            if e.code not in (404, 409):
                raise

    async def _volume_phase(self, pv: dict[str, Any], phase: str, message: str = "") -> dict[str, Any]:
        body = dict(pv)
        st = {k: v for k, v in (pv.get("status") or {}).items() if k != "message"}
        st["phase"] = phase
        st["lastPhaseTransitionTime"] = meta.now()
        if message:
            st["message"] = message
        body["status"] = st
        return await self.client.update(PERSISTENTVOLUMES, body, subresource="status")

    # -- volumes -------------------------------------------------------------------
    async def _sync_volume(self, pv: dict[str, Any]) -> None:
        spec = pv.get("spec") or {}
        phase = (pv.get("status") or {}).get("phase")
        ref = spec.get("claimRef") or {}
        if not ref.get("name"):
            if phase != "Available":
                await self._volume_phase(pv, "Available")
            return
        pvc = self.pvc_informer.get(f"{ref.get('namespace')}/{ref['name']}")
        if pvc is None:
            try:
                pvc = await self.client.get(PERSISTENTVOLUMECLAIMS, ref["name"], ref.get("namespace"))
            except errors.StatusError as e:
                if e.code != 404:
                    raise
        if pvc is not None and (not ref.get("uid") or ref.get("uid") == pvc["metadata"]["uid"]):
            if ref.get("uid") and phase != "Bound" and (pvc.get("spec") or {}).get("volumeName") == \
                    pv["metadata"]["name"]:
                await self._volume_phase(pv, "Bound")
            return
        if not ref.get("uid"):
            return  # pre-bound to a claim that does not exist yet: wait for it
        if phase != "Released" and phase != "Failed":
            pv = await self._volume_phase(pv, "Released")
        policy = spec.get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Delete" and not meta.is_deleting(pv):
            if (pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY):
                return  # its provisioner deletes the storage, then the volume
            try:
                await self.client.delete(PERSISTENTVOLUMES, pv["metadata"]["name"])
            except errors.StatusError as e:
                if e.code != 404:
                    raise
        elif policy == "Recycle":
            self.recorder.event(pv, "Warning", "VolumeFailedRecycle",
                                "Recycle is not supported: use Delete or Retain")
