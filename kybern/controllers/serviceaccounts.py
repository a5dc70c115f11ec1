"""ServiceAccounts controller (upstream pkg/controller/serviceaccount): every
active namespace has a `default` ServiceAccount; it is created with the
namespace and again if deleted."""

from __future__ import annotations

import logging
from typing import Any

from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import NAMESPACES, SERVICEACCOUNTS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

MANAGED = ("default",)


class ServiceAccountsController:
    name = "serviceaccount"

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        self.client = client
        self.namespaces = informers.informer(NAMESPACES)
        self.accounts = informers.informer(SERVICEACCOUNTS)
        self.queue = WorkQueue("serviceaccount", base_delay=0.5, max_delay=30)
        self.namespaces.add_handler(self._on_namespace)
        self.accounts.add_handler(self._on_account)

    def _on_namespace(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "DELETED":
            self.queue.add(new["metadata"]["name"])

    def _on_account(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ == "DELETED" and new["metadata"].get("name") in MANAGED:
            self.queue.add(new["metadata"].get("namespace") or "")

    async def run(self, workers: int = 1) -> None:
        await self.namespaces.wait_synced()
        await self.accounts.wait_synced()
        await run_workers(self.queue, self.reconcile, workers)

    async def reconcile(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if not meta.is_active_namespace(ns):
            return
        for name in MANAGED:
            if self.accounts.get(f"{namespace}/{name}") is not None:
                continue
            try:
                await self.client.create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                           "metadata": {"name": name, "namespace": namespace}},
                                         namespace)
            except errors.StatusError as e:
                # AlreadyExists: the cache is behind; Forbidden: the namespace began terminating
                if e.code not in (409, 403, 404):
                    raise
