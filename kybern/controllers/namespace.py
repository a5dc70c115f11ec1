"""Namespace controller: empties a Terminating namespace, then releases it, as
pkg/controller/namespace/deletion does.

A namespace being deleted keeps `kubernetes` in spec.finalizers. This controller
deletes every namespaced object in it (found through discovery, so kinds added
later are covered), waits until none is left (pods may take their grace
period), and then removes the finalizer through the `finalize` subresource;
the apiserver deletes the namespace when nothing holds it any more.
"""

from __future__ import annotations

import logging
from typing import Any

from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import NAMESPACES, Resource
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"


async def namespaced_resources(client: Client) -> list[Resource]:
    """Every namespaced, deletable resource the server serves (legacy discovery)."""
    out: list[Resource] = []
    paths = ["/api/v1"]
    groups = await client.request("GET", "/apis")
    for g in groups.get("groups", []):
        paths.append(f"/apis/{g['preferredVersion']['groupVersion']}")
    for path in paths:
        doc = await client.request("GET", path)
        gv = doc["groupVersion"]
        group, _, version = gv.rpartition("/")
        for r in doc.get("resources", []):
            if "/" in r["name"] or not r.get("namespaced") or "delete" not in r.get("verbs", []):
                continue
            if r["name"] == "events":
                continue  # as upstream, events go last; they are deleted below after the rest
            out.append(Resource(group, version, r["name"], r["kind"]))
    out.append(Resource("", "v1", "events", "Event"))
    return out


class NamespaceController:
    def __init__(self, client: Client, namespaces: Informer) -> None:
        self.client = client
        self.namespaces = namespaces
        self.queue = WorkQueue("namespace", base_delay=0.5, max_delay=30)
        namespaces.add_handler(self._on_event)

    def _on_event(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "DELETED" and meta.is_deleting(new):
            self.queue.add(new["metadata"]["name"])

    async def run(self, workers: int = 2) -> None:
        await self.namespaces.wait_synced()
        await run_workers(self.queue, self.reconcile, workers)

    async def reconcile(self, name: str) -> None:
        ns = self.namespaces.get(name)
        if ns is None or not meta.is_deleting(ns):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        remaining = 0
        for res in await namespaced_resources(self.client):
            try:
                lst = await self.client.list(res, name)
            except errors.StatusError as e:
                if e.code in (404, 405):
                    continue
                raise
            for item in lst.get("items", []):
                remaining += 1
                if meta.is_deleting(item):
                    continue
                try:
                    await self.client.delete(res, item["metadata"]["name"], name,
                                             propagation_policy="Background")
                except errors.StatusError as e:
                    if e.code != 404:
                        raise
        if remaining:
            # objects are going away (graceful pods, finalizers): look again soon
            self.queue.add_after(name, 1.0)
            return
        ns["spec"]["finalizers"] = [f for f in ns["spec"]["finalizers"] if f != FINALIZER]
        try:
            await self.client.update(NAMESPACES, ns, subresource="finalize")
        except errors.StatusError as e:
            if e.code not in (404, 409):
                raise
            if e.code == 409:
                self.queue.add_after(name, 0.2)
