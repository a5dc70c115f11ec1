"""Namespace controller: empties a Terminating namespace, then releases it, as
pkg/controller/namespace/deletion does.

A namespace being deleted keeps `kubernetes` in spec.finalizers. This controller
deletes every namespaced object in it (found through discovery, so kinds added
later are covered), waits until none is left (pods may take their grace
period), and then removes the finalizer through the `finalize` subresource;
the apiserver deletes the namespace when nothing holds it any more.

Each pass writes upstream's five deletion conditions to the namespace's status
(status_condition_utils.go), so `kubectl describe ns` shows why a namespace stays
Terminating: `NamespaceContentRemaining` ("Some resources are remaining: configmaps.
has 1 resource instances") and `NamespaceFinalizersRemaining` ("... finalizers
remaining: example.com/hold in 1 resource instances") are True while objects are
left; the discovery, group-version and content-failure conditions are False.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import NAMESPACES, Resource
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"

# upstream's condition types in their order, with the reason and message of the "all is
# well" (False) variant of each
_CONDITIONS = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions",
                                                    "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}


def deletion_conditions(old: list[dict[str, Any]], remaining: dict[str, int], finalizers: dict[str, int],
                        now: str) -> list[dict[str, Any]] | None:
    """The namespace's conditions after a pass that left `remaining` objects per
    "<resource>.<group>" holding `finalizers`; None when nothing changed
    (namespaceConditionUpdater.Update: a transition time moves only with the status)."""
    want: dict[str, tuple[str, str, str]] = {t: ("False", *ok) for t, ok in _CONDITIONS.items()}
    if remaining:
        left = sorted(f"{r} has {n} resource instances" for r, n in remaining.items() if n)
        want["NamespaceContentRemaining"] = ("True", "SomeResourcesRemain",
                                             f"Some resources are remaining: {', '.join(left)}")
    if finalizers:
        held = sorted(f"{f} in {n} resource instances" for f, n in finalizers.items() if n)
        want["NamespaceFinalizersRemaining"] = (
            "True", "SomeFinalizersRemain",
            f"Some content in the namespace has finalizers remaining: {', '.join(held)}")
    out = copy.deepcopy(old)
    changed = False
    for typ, (status, reason, message) in want.items():
        cur = next((c for c in out if c.get("type") == typ), None)
        if cur is None:
            out.append({"type": typ, "status": status, "lastTransitionTime": now, "reason": reason,
                        "message": message})
            changed = True
        elif (cur.get("status"), cur.get("reason"), cur.get("message")) != (status, reason, message):
            if cur.get("status") != status:
                cur["lastTransitionTime"] = now
            cur.update(status=status, reason=reason, message=message)
            changed = True
    return out if changed else None


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
        remaining: dict[str, int] = {}  # "<resource>.<group>" -> objects left after this pass
        finalizers: dict[str, int] = {}  # finalizer -> objects left holding it
        for res in await namespaced_resources(self.client):
            try:
                lst = await self.client.list(res, name)
            except errors.StatusError as e:
                if e.code in (404, 405):
                    continue
                raise
            items = lst.get("items", [])
            if not items:
                continue
            for item in items:
                if meta.is_deleting(item):
                    continue
                try:
                    await self.client.delete(res, item["metadata"]["name"], name,
                                             propagation_policy="Background")
                except errors.StatusError as e:
                    if e.code != 404:
                        raise
            # what is left once deleted (graceful pods, finalizers), as upstream lists again
            left = (await self.client.list(res, name)).get("items", [])
            if left:
                remaining[f"{res.plural}.{res.group}"] = len(left)
                for item in left:
                    for f in item["metadata"].get("finalizers") or []:
                        finalizers[f] = finalizers.get(f, 0) + 1
        ns = await self._write_conditions(ns, remaining, finalizers)
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

    async def _write_conditions(self, ns: dict[str, Any], remaining: dict[str, int],
                                finalizers: dict[str, int]) -> dict[str, Any]:
        """The namespace as it is after writing the conditions (when they changed)."""
        status = ns.get("status") or {}
        conds = deletion_conditions(status.get("conditions") or [], remaining, finalizers, meta.now())
        if conds is None:
            return ns
        obj = copy.deepcopy(ns)
        obj.setdefault("status", {})["conditions"] = conds
        try:
            return await self.client.update(NAMESPACES, obj, subresource="status")
        except errors.StatusError as e:
            if e.code not in (404, 409):  # gone, or changed meanwhile: the next pass writes them
                raise
            return ns
