"""Resource quota controller (upstream pkg/controller/resourcequota): keeps each
ResourceQuota's `status.hard` (its spec's) and `status.used` (what the namespace's
objects add up to, kybern/api/quota.py), so `kubectl get/describe quota` show
usage. Pods, services and claims are watched; other counted kinds are listed
at each sync, and every quota is synced again every RESYNC seconds. The
apiserver's ResourceQuota admission refuses what would go past `hard`."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from kybern.api import quota
from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import PERSISTENTVOLUMECLAIMS, PODS, SERVICES, Resource
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors

log = logging.getLogger(__name__)

RESOURCEQUOTAS = Resource("", "v1", "resourcequotas", "ResourceQuota")
RESYNC = 10.0
_PLURALS = {"Pod": "pods", "Service": "services", "PersistentVolumeClaim": "persistentvolumeclaims"}


class ResourceQuotaController:
    name = "resourcequota"

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        self.client = client
        self.quotas = informers.informer(RESOURCEQUOTAS)
        self.watched = {("", "pods"): informers.informer(PODS), ("", "services"): informers.informer(SERVICES),
                        ("", "persistentvolumeclaims"): informers.informer(PERSISTENTVOLUMECLAIMS)}
        self.queue = WorkQueue("resourcequota", base_delay=0.5, max_delay=30)
        self.quotas.add_handler(self._on_quota)
        for inf in self.watched.values():
            inf.add_handler(self._on_object)

    def _on_quota(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        # as upstream's updateQuota: a new quota, or a change of spec.hard, not the status
        # writes (each admitted create charges the quota: a recount then would race it)
        if typ == "DELETED":
            return
        hard = (new.get("spec") or {}).get("hard")
        if typ == "MODIFIED" and old is not None and (old.get("spec") or {}).get("hard") == hard \
                and (new.get("status") or {}).get("hard") == hard:
            return
        self.queue.add(f"{new['metadata'].get('namespace')}/{new['metadata']['name']}")

    def _on_object(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """Replenishment, as upstream's quota monitor: a delete, or an update that
        changes what an object is charged (a pod gone Succeeded/Failed, a service's
        type). A create is not a cause: the admission charged it already, and a recount
        then, from a pods cache a step behind the quota, would undo a charge just made
        and let the next create past `hard`."""
        if typ == "ADDED":
            return
        ns = new["metadata"].get("namespace")
        res = (new.get("apiVersion", "v1").rpartition("/")[0], _PLURALS.get(new.get("kind", ""), ""))
        for q in self.quotas.list(ns):
            if typ == "MODIFIED" and old is not None and self._charge(q, res, old) == self._charge(q, res, new):
                continue
            self.queue.add(f"{ns}/{q['metadata']['name']}")

    @staticmethod
    def _charge(q: dict[str, Any], res: tuple[str, str], obj: dict[str, Any]) -> dict[str, Decimal]:
        if not quota.applies_to(q, res[0], res[1], obj):
            return {}
        return quota.usage(res[0], res[1], obj, sorted((q.get("spec") or {}).get("hard") or {}))

    async def run(self, workers: int = 1) -> None:
        await self.quotas.wait_synced()
        for inf in self.watched.values():
            await inf.wait_synced()
        await run_workers(self.queue, self.reconcile, workers)

    async def _objects(self, group: str, plural: str, ns: str) -> list[dict[str, Any]]:
        inf = self.watched.get((group, plural))
        if inf is not None:
            return inf.list(ns)
        if (group, plural) == ("", "resourcequotas"):
            return self.quotas.list(ns)
        res = Resource(group, "v1", plural, "")
        try:
            return (await self.client.list(res, ns)).get("items") or []
        except errors.StatusError as e:
            if e.code in (404, 405):
                return []
            raise

    async def reconcile(self, key: str) -> None:
        q = self.quotas.get(key)
        if q is None:
            return
        ns = q["metadata"].get("namespace") or "default"
        self.queue.add_after(key, RESYNC)
        hard = dict((q.get("spec") or {}).get("hard") or {})
        names = sorted(hard)
        used: dict[str, Decimal] = {n: Decimal(0) for n in names}
        for group, plural in quota.kinds_for(names):
            for obj in await self._objects(group, plural, ns):
                if not quota.applies_to(q, group, plural, obj):
                    continue
                for n, v in quota.usage(group, plural, obj, names).items():
                    used[n] += v
        status = {"hard": hard, "used": {n: quota.text(n, used[n], hard[n]) for n in names}}
        if (q.get("status") or {}) == status:
            return
        body = {**q, "status": status}
        try:
            await self.client.update(RESOURCEQUOTAS, body, subresource="status")
        except errors.StatusError as e:
            if e.code == 409:
                self.queue.add_after(key, 0.2)
            elif e.code != 404:
                raise
