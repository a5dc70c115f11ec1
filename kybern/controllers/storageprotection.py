"""PVC and PV protection (upstream pkg/controller/volume/pvcprotection and
pvprotection). The apiserver gives every new claim the `kubernetes.io/pvc-protection`
finalizer and every new volume `kubernetes.io/pv-protection` (the
StorageObjectInUseProtection admission plugin); these controllers take them off
once the object is being deleted and nothing uses it: no pod that has not finished
names the claim, and the volume is not Bound. So a claim deleted while a pod mounts
it stays Terminating until the pod is gone, as upstream."""

from __future__ import annotations

import logging
from typing import Any

from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS, Resource
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

PVC_FINALIZER = "kubernetes.io/pvc-protection"
PV_FINALIZER = "kubernetes.io/pv-protection"


def claims_of(pod: dict[str, Any]) -> list[str]:
    return [v["persistentVolumeClaim"]["claimName"] for v in (pod.get("spec") or {}).get("volumes") or []
            if isinstance(v, dict) and isinstance(v.get("persistentVolumeClaim"), dict)
            and v["persistentVolumeClaim"].get("claimName")]


class StorageProtectionController:
    name = "storage-protection"

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        self.client = client
        self.pvcs = informers.informer(PERSISTENTVOLUMECLAIMS)
        self.pvs = informers.informer(PERSISTENTVOLUMES)
        self.pods = informers.informer(PODS)
        self.queue = WorkQueue("storage-protection", base_delay=0.2, max_delay=10)
        self.pvcs.add_handler(self._on_pvc)
        self.pvs.add_handler(self._on_pv)
        self.pods.add_handler(self._on_pod)

    def _on_pvc(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "DELETED" and meta.is_deleting(new):
            self.queue.add(f"pvc:{new['metadata'].get('namespace')}/{new['metadata']['name']}")

    def _on_pv(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "DELETED" and meta.is_deleting(new):
            self.queue.add(f"pv:{new['metadata']['name']}")

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        ns = new["metadata"].get("namespace")
        for claim in claims_of(new):  # a pod that went (or finished) may free its claims
            pvc = self.pvcs.get(f"{ns}/{claim}")
            if pvc is not None and meta.is_deleting(pvc):
                self.queue.add(f"pvc:{ns}/{claim}")

    async def run(self, workers: int = 1) -> None:
        for inf in (self.pvcs, self.pvs, self.pods):
            await inf.wait_synced()
        await run_workers(self.queue, self.reconcile, workers)

    def _claim_in_use(self, ns: str, name: str) -> bool:
        for pod in self.pods.list(ns):
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            if name in claims_of(pod):
                return True
        return False

    async def reconcile(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "pvc":
            obj = self.pvcs.get(rest)
            res, finalizer = PERSISTENTVOLUMECLAIMS, PVC_FINALIZER
            ns, _, name = rest.partition("/")
            in_use = obj is not None and self._claim_in_use(ns, name)
        else:
            obj = self.pvs.get(rest)
            res, finalizer = PERSISTENTVOLUMES, PV_FINALIZER
            ns, name = "", rest
            in_use = obj is not None and (obj.get("status") or {}).get("phase") == "Bound"
        if obj is None or not meta.is_deleting(obj) or finalizer not in (obj["metadata"].get("finalizers") or []):
            return
        if in_use:
            return  # a pod or claim event brings it back
        await self._drop(res, obj, finalizer)

    async def _drop(self, res: Resource, obj: dict[str, Any], finalizer: str) -> None:
        m = obj["metadata"]
        finalizers = [f for f in m.get("finalizers") or [] if f != finalizer]
        try:
            await self.client.patch(res, m["name"], {"metadata": {"finalizers": finalizers or None,
                                                                  "resourceVersion": m["resourceVersion"]}},
                                    m.get("namespace"))
        except errors.StatusError as e:
            if e.code == 409:
                raise  # retried with the newer object
            if e.code != 404:
                raise
