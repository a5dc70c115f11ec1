"""The `local-path` provisioner (after rancher/local-path-provisioner): dynamic
PersistentVolumes that are directories on the node where the claim's first pod
runs.

- At start it creates the default StorageClass `local-path` if missing
  (provisioner `kybern.io/local-path`, volumeBindingMode WaitForFirstConsumer,
  reclaimPolicy Delete, `storageclass.kubernetes.io/is-default-class: "true"`).
- WaitForFirstConsumer: our scheduler does not reserve volumes, so it schedules
  the pod anyway; once a pod using an unbound claim of such a class has a node,
  this controller writes `volume.kubernetes.io/selected-node` on the claim (what
  kube-scheduler's VolumeBinding plugin does upstream).
- A claim handed to us (the binder set `volume.kubernetes.io/storage-provisioner`)
  with a selected node gets a PV `pvc-<claim uid>`: hostPath
  `<dir>/pvc-<uid>_<namespace>_<claim>` (DirectoryOrCreate, so the node agent
  makes it at mount time), node affinity to that node, claimRef pre-bound to
  the claim; the binder then binds the pair.
- A Released volume of ours with reclaimPolicy Delete: the directory is removed
  (when it is on this machine) and the PV deleted.

`<dir>` is the node's `kybern.io/local-path-dir` annotation when its agent
publishes one, else $KYBERN_LOCAL_PATH_DIR, else ~/.kybern/local-path (of the user
running the controllers; rancher's default is /opt/local-path-provisioner, which
needs root).
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import (
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
    STORAGECLASSES,
)
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import persistentvolume as pvb
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

PROVISIONER = "kybern.io/local-path"
CLASS_NAME = "local-path"
NODE_DIR_ANNOTATION = "kybern.io/local-path-dir"
DEFAULT_DIR = "~/.kybern/local-path"


def default_class() -> dict[str, Any]:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": CLASS_NAME, "annotations": {pvb.DEFAULT_CLASS: "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"}


def volume_for(pvc: dict[str, Any], sc: dict[str, Any], node: str, base: str) -> dict[str, Any]:
    m = pvc["metadata"]
    spec = pvc.get("spec") or {}
    name = f"pvc-{m['uid']}"
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "1Gi"
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {pvb.PROVISIONED_BY: PROVISIONER,
                                                   "local.path.provisioner/selected-node": node}},
        "spec": {
            "capacity": {"storage": request},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": sc["metadata"]["name"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "hostPath": {"path": os.path.join(base, f"{name}_{m.get('namespace')}_{m['name']}"),
                         "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
            "claimRef": pvb.claim_ref(pvc),
        },
    }


class LocalPathProvisioner:
    name = "local-path-provisioner"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 4) -> None:
        self.client = client
        self.workers = workers
        self.pod_informer = informers.informer(PODS)
        self.pvc_informer = informers.informer(PERSISTENTVOLUMECLAIMS)
        self.pv_informer = informers.informer(PERSISTENTVOLUMES)
        self.sc_informer = informers.informer(STORAGECLASSES)
        self.node_informer = informers.informer(NODES)
        self.queue = WorkQueue("local-path-provisioner")
        self.recorder = EventRecorder(client, "kybern.io/local-path")
        self.pod_informer.add_handler(self._on_pod)
        self.pvc_informer.add_handler(lambda t, o, n: t != "DELETED" and self.queue.add("pvc:" + key_of(n)))
        self.pv_informer.add_handler(lambda t, o, n: t != "DELETED" and self.queue.add("pv:" + key_of(n)))

    async def run(self) -> None:
        await self._ensure_class()
        await run_workers(self.queue, self.reconcile, self.workers)

    async def _ensure_class(self) -> None:
        if self.sc_informer.get(CLASS_NAME) is not None:
            return
        try:
            await self.client.create(STORAGECLASSES, default_class())
        except errors.StatusError as e:
            if e.code != 409:
                raise

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ == "DELETED" or not (new.get("spec") or {}).get("nodeName"):
            return
        if old is not None and (old.get("spec") or {}).get("nodeName"):
            return  # bound before: already handled
        ns = new["metadata"].get("namespace")
        for v in (new.get("spec") or {}).get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                self.queue.add(f"sel:{ns}/{claim}/{new['spec']['nodeName']}")

    def base_dir(self, node: str) -> str:
        n = self.node_informer.get(node)
        d = ((n or {}).get("metadata", {}).get("annotations") or {}).get(NODE_DIR_ANNOTATION)
        return d or os.environ.get("KYBERN_LOCAL_PATH_DIR") or os.path.expanduser(DEFAULT_DIR)

    async def reconcile(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "sel":
            ns, claim, node = rest.split("/", 2)
            await self._select_node(f"{ns}/{claim}", node)
        elif kind == "pvc":
            pvc = self.pvc_informer.get(rest)
            if pvc is not None:
                await self._provision(pvc)
        else:
            pv = self.pv_informer.get(rest)
            if pv is not None:
                await self._reclaim(pv)

    async def _select_node(self, key: str, node: str) -> None:
        pvc = self.pvc_informer.get(key)
        if pvc is None or (pvc.get("spec") or {}).get("volumeName") or meta.is_deleting(pvc):
            return
        ann = pvc["metadata"].get("annotations") or {}
        if ann.get(pvb.SELECTED_NODE):
            return
        sc = self.sc_informer.get(pvb.class_of(pvc))
        if sc is None or sc.get("volumeBindingMode") != "WaitForFirstConsumer":
            return
        await self.client.patch(PERSISTENTVOLUMECLAIMS, pvc["metadata"]["name"],
                                {"metadata": {"annotations": {pvb.SELECTED_NODE: node}}},
                                pvc["metadata"].get("namespace"))

    async def _provision(self, pvc: dict[str, Any]) -> None:
        m = pvc["metadata"]
        ann = m.get("annotations") or {}
        if ann.get(pvb.STORAGE_PROVISIONER) != PROVISIONER or (pvc.get("spec") or {}).get("volumeName") \
                or meta.is_deleting(pvc):
            return
        sc = self.sc_informer.get(pvb.class_of(pvc))
        if sc is None or sc.get("provisioner") != PROVISIONER:
            return
        node = ann.get(pvb.SELECTED_NODE)
        if not node:
            if sc.get("volumeBindingMode") == "WaitForFirstConsumer":
                return
            nodes = sorted(n["metadata"]["name"] for n in self.node_informer.list())
            if not nodes:
                raise RuntimeError("no node to provision on")
            node = nodes[0]
        pv = volume_for(pvc, sc, node, self.base_dir(node))
        if self.pv_informer.get(pv["metadata"]["name"]) is not None:
            return
        self.recorder.event(pvc, "Normal", "Provisioning",
                            f'External provisioner is provisioning volume for claim "{key_of(pvc)}"')
        try:
            await self.client.create(PERSISTENTVOLUMES, pv)
        except errors.StatusError as e:
            if e.code == 409:
                return
            self.recorder.event(pvc, "Warning", "ProvisioningFailed",
                                f"failed to provision volume with StorageClass \"{sc['metadata']['name']}\": "
                                f"{e.message}")
            raise
        self.recorder.event(pvc, "Normal", "ProvisioningSucceeded",
                            f"Successfully provisioned volume {pv['metadata']['name']}")

    async def _reclaim(self, pv: dict[str, Any]) -> None:
        ann = pv["metadata"].get("annotations") or {}
        spec = pv.get("spec") or {}
        if ann.get(pvb.PROVISIONED_BY) != PROVISIONER or meta.is_deleting(pv):
            return
        if (pv.get("status") or {}).get("phase") != "Released" or \
                (spec.get("persistentVolumeReclaimPolicy") or "Delete") != "Delete":
            return
        path = (spec.get("hostPath") or {}).get("path") or ""
        # only a directory we named (pvc-<uid>_...) under a local-path dir is ours to remove
        if os.path.basename(path).startswith(pv["metadata"]["name"] + "_") and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        try:
            await self.client.delete(PERSISTENTVOLUMES, pv["metadata"]["name"])
        except errors.StatusError as e:
            if e.code != 404:
                raise
