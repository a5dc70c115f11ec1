"""Root CA publisher (upstream pkg/controller/certificates/rootcacertpublisher):
every active namespace has a ConfigMap `kube-root-ca.crt` whose `ca.crt` is
the cluster's CA bundle, the one that signed the apiserver's certificate
(what in-cluster clients verify it with). It is created with the namespace,
created again if deleted and put back if changed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import CONFIGMAPS, NAMESPACES
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

NAME = meta.ROOT_CA_CONFIGMAP
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


class RootCAPublisher:
    name = "root-ca-cert-publisher"

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        self.client = client
        self.ca = Path(client.ca_file).read_text() if client.ca_file else ""
        self.namespaces = informers.informer(NAMESPACES)
        self.configmaps = informers.informer(CONFIGMAPS)
        self.queue = WorkQueue(self.name, base_delay=0.5, max_delay=30)
        self.namespaces.add_handler(self._on_namespace)
        self.configmaps.add_handler(self._on_configmap)

    def _on_namespace(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "DELETED":
            self.queue.add(new["metadata"]["name"])

    def _on_configmap(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if new["metadata"].get("name") == NAME:
            self.queue.add(new["metadata"].get("namespace") or "")

    async def run(self, workers: int = 1) -> None:
        if not self.ca:
            log.info("%s: no CA file (plain HTTP): nothing to publish", self.name)
            return
        await self.namespaces.wait_synced()
        await self.configmaps.wait_synced()
        await run_workers(self.queue, self.reconcile, workers)

    async def reconcile(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if not meta.is_active_namespace(ns):
            return
        want = {"ca.crt": self.ca}
        cm = self.configmaps.get(f"{namespace}/{NAME}")
        try:
            if cm is None:
                await self.client.create(CONFIGMAPS, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": NAME, "namespace": namespace,
                                 "annotations": {"kubernetes.io/description": DESCRIPTION}},
                    "data": want}, namespace)
            elif cm.get("data") != want or cm.get("binaryData") or \
                    (cm["metadata"].get("annotations") or {}).get("kubernetes.io/description") != DESCRIPTION:
                fixed = {**cm, "data": want, "metadata": {**cm["metadata"], "annotations": {
                    **(cm["metadata"].get("annotations") or {}), "kubernetes.io/description": DESCRIPTION}}}
                fixed.pop("binaryData", None)
                await self.client.update(CONFIGMAPS, fixed)
        except errors.StatusError as e:
            # AlreadyExists/Conflict: the cache is behind (the event requeues it);
            # Forbidden/NotFound: the namespace began terminating
            if e.code not in (409, 403, 404):
                raise
