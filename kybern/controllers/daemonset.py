"""The DaemonSet controller (upstream pkg/controller/daemon): one pod on every
node that should run it (daemonset_util.py says which), created pinned to the
node by required node affinity and bound by the scheduler; surplus, duplicate
and failed daemon pods are deleted.

Updates through ControllerRevisions (history.py); pods carry the revision's
hash in `controller-revision-hash`. RollingUpdate replaces old pods within
maxUnavailable (default 1) or, with maxSurge, starts the new pod first and
removes the old one once the new is available; OnDelete waits for the user.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kybern.api import apps
from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import daemonset_util as du
from kybern.controllers import history, podutil
from kybern.controllers.expectations import Expectations
from kybern.controllers.ownership import claim, fresh_owner_check
from kybern.controllers.podcontrol import PodControl, PodIndex, deep_copy, pod_from_template
from kybern.machinery import errors, meta
from kybern.machinery.selectors import selector_matches

log = logging.getLogger(__name__)


def _hash_of(pod: dict[str, Any]) -> str:
    return (pod["metadata"].get("labels") or {}).get(history.REVISION_HASH_LABEL, "")


class DaemonSetController:
    name = "daemonset"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 2) -> None:
        self.client = client
        self.workers = workers
        self.ds_informer = informers.informer(DAEMONSETS)
        self.pod_informer = informers.informer(PODS)
        self.node_informer = informers.informer(NODES)
        self.rev_informer = informers.informer(CONTROLLERREVISIONS)
        self.pods = PodIndex(self.pod_informer)
        self.queue = WorkQueue("daemonset")
        self.expectations = Expectations()
        self.recorder = EventRecorder(client, "daemonset-controller")
        self.pod_control = PodControl(client, self.recorder)
        self.ds_informer.add_handler(lambda t, o, n: self.queue.add(key_of(n)))
        self.pod_informer.add_handler(self._on_pod)
        self.node_informer.add_handler(self._on_node)

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    def _on_node(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if old is not None and typ == "MODIFIED":
            o, n = old, new
            if (o["metadata"].get("labels") == n["metadata"].get("labels")
                    and (o.get("spec") or {}) == (n.get("spec") or {})
                    and bool(meta.is_deleting(o)) == bool(meta.is_deleting(n))):
                return  # a heartbeat: nothing a DaemonSet decides on changed
        for ds in self.ds_informer.list():
            self.queue.add(key_of(ds))

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        ref = meta.controller_of(new)
        ns = new["metadata"].get("namespace")
        if ref is not None:
            if ref.get("kind") != "DaemonSet":
                return
            key = f"{ns}/{ref.get('name')}"
            if typ == "ADDED" and old is None:
                self.expectations.creation_observed(key)
            if typ == "DELETED" or meta.is_deleting(new):
                self.expectations.deletion_observed(key, key_of(new))
            self.queue.add(key)
            ds = self.ds_informer.get(key)
            mrs = int(((ds or {}).get("spec") or {}).get("minReadySeconds") or 0)
            if mrs and old is not None and not podutil.is_ready(old) and podutil.is_ready(new):
                self.queue.add_after(key, float(mrs))
            return
        if typ != "DELETED":
            labels = new["metadata"].get("labels") or {}
            for ds in self.ds_informer.list(ns):
                if selector_matches((ds.get("spec") or {}).get("selector"), labels):
                    self.queue.add(key_of(ds))

    # -- reconcile -----------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        cached = self.ds_informer.get(key)
        if cached is None:
            self.expectations.delete(key)
            return
        ds = deep_copy(cached)
        m = ds["metadata"]
        ns = m.get("namespace") or ""
        spec = ds.get("spec") or {}
        candidates = self.pods.owned(m["uid"]) + self.pods.orphans(ns)
        pods = await claim(self.client, PODS, ds, spec.get("selector"), candidates,
                           fresh_owner_check(self.client, DAEMONSETS, ds))
        revisions = history.owned(self.rev_informer.list(ns), ds)
        labels = dict(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {})
        rev, collisions = await history.ensure(self.client, ds, revisions, labels,
                                               int((ds.get("status") or {}).get("collisionCount") or 0))
        cur_hash = (rev["metadata"].get("labels") or {}).get(history.REVISION_HASH_LABEL, "")
        by_node: dict[str, list[dict[str, Any]]] = {}
        for p in pods:
            node = du.pinned_node(p)
            if node:
                by_node.setdefault(node, []).append(p)
        nodes = self.node_informer.list()
        err: Exception | None = None
        if not meta.is_deleting(ds) and self.expectations.satisfied(key):
            try:
                await self._manage(key, ds, nodes, by_node, rev, cur_hash)
            except Exception as e:  # noqa: BLE001 - status first, then retry
                err = e
        await self._write_status(ds, nodes, by_node, cur_hash, collisions)
        live = {r["metadata"]["name"] for r in history.owned(self.rev_informer.list(ns), ds)
                if (r["metadata"].get("labels") or {}).get(history.REVISION_HASH_LABEL)
                in {cur_hash} | {_hash_of(p) for p in pods}}
        limit = spec.get("revisionHistoryLimit")
        await history.truncate(self.client, history.owned(self.rev_informer.list(ns), ds), live,
                               10 if limit is None else int(limit))
        if err is not None:
            raise err

    async def _manage(self, key: str, ds: dict[str, Any], nodes: list[dict[str, Any]],
                      by_node: dict[str, list[dict[str, Any]]], rev: dict[str, Any], cur_hash: str) -> None:
        tmpl_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        create: list[str] = []
        delete: list[dict[str, Any]] = []
        for node in nodes:
            name = node["metadata"]["name"]
            should_run, should_continue = du.node_should_run(tmpl_spec, node)
            here = [p for p in by_node.get(name, []) if not meta.is_deleting(p)]
            # as upstream's podsShouldBeOnNode: a node still holding a terminating daemon pod
            # gets its new one once that is gone (its ports, its volumes), not beside it
            if should_run and not by_node.get(name):
                create.append(name)
            elif should_run and not here:
                continue
            elif not should_continue:
                delete.extend(here)
            else:
                failed = [p for p in here if (p.get("status") or {}).get("phase") == "Failed"]
                if failed:
                    delete.extend(failed)
                    self.recorder.event(ds, "Warning", "FailedDaemonPod",
                                        f"Found failed daemon pod {failed[0]['metadata'].get('namespace')}/"
                                        f"{failed[0]['metadata']['name']} on node {name}, will try to kill it")
                    continue
                if len(here) > 1 and not self._surging(ds):
                    here.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
                    delete.extend(here[1:])  # duplicates: keep the oldest
        known = {n["metadata"]["name"] for n in nodes}
        for name, ps in by_node.items():
            if name not in known:
                delete.extend(p for p in ps if not meta.is_deleting(p))
        if not delete and not create:
            create, delete = self._rolling(ds, nodes, by_node, cur_hash)
        if delete:
            self.expectations.expect_deletions(key, [key_of(p) for p in delete])
        elif create:
            self.expectations.expect_creations(key, len(create))
        results = await asyncio.gather(
            *(self.pod_control.delete(ds, p) for p in delete),
            *(self._create(ds, n, rev, cur_hash) for n in create), return_exceptions=True)
        for i, r in enumerate(results):
            if isinstance(r, Exception):
                if i < len(delete):
                    self.expectations.deletion_observed(key, key_of(delete[i]))
                else:
                    self.expectations.creation_observed(key)
        for r in results:
            if isinstance(r, Exception):
                raise r

    def _surging(self, ds: dict[str, Any]) -> bool:
        st = (ds.get("spec") or {}).get("updateStrategy") or {}
        return st.get("type", "RollingUpdate") == "RollingUpdate" and \
            du.int_or_percent((st.get("rollingUpdate") or {}).get("maxSurge"), 1, True, 0) > 0

    def _rolling(self, ds: dict[str, Any], nodes: list[dict[str, Any]],
                 by_node: dict[str, list[dict[str, Any]]], cur_hash: str) -> tuple[list[str], list[dict[str, Any]]]:
        """One step of RollingUpdate: (nodes to start a new pod on, old pods to delete)."""
        spec = ds.get("spec") or {}
        st = spec.get("updateStrategy") or {}
        if st.get("type", "RollingUpdate") != "RollingUpdate":
            return [], []
        tmpl_spec = (spec.get("template") or {}).get("spec") or {}
        mrs = int(spec.get("minReadySeconds") or 0)
        now = podutil.utcnow()
        eligible = [n["metadata"]["name"] for n in nodes if du.node_should_run(tmpl_spec, n)[0]]
        desired = len(eligible)
        ru = st.get("rollingUpdate") or {}
        surge = du.int_or_percent(ru.get("maxSurge"), desired, True, 0)
        unavail = du.int_or_percent(ru.get("maxUnavailable"), desired, False, 1 if not surge else 0)
        create: list[str] = []
        delete: list[dict[str, Any]] = []
        if surge > 0:
            surging = 0
            for name in eligible:
                here = [p for p in by_node.get(name, []) if not meta.is_deleting(p)]
                new = [p for p in here if _hash_of(p) == cur_hash]
                old = [p for p in here if _hash_of(p) != cur_hash]
                if new and old:
                    surging += 1
                    if all(podutil.is_available(p, mrs, now) for p in new):
                        delete.extend(old)
            for name in eligible:
                here = [p for p in by_node.get(name, []) if not meta.is_deleting(p)]
                if here and all(_hash_of(p) != cur_hash for p in here):
                    if not any(podutil.is_available(p, mrs, now) for p in here):
                        delete.extend(here)  # not serving anyway: replace in place
                    elif surging < surge:
                        create.append(name)
                        surging += 1
            return create, delete
        unavailable = sum(1 for name in eligible
                          if not any(podutil.is_available(p, mrs, now) for p in by_node.get(name, [])
                                     if not meta.is_deleting(p)))
        budget = max(0, unavail - unavailable)
        for name in eligible:
            old = [p for p in by_node.get(name, []) if _hash_of(p) != cur_hash and not meta.is_deleting(p)]
            if not old:
                continue
            if not any(podutil.is_available(p, mrs, now) for p in old):
                delete.extend(old)
            elif budget > 0:
                delete.extend(old)
                budget -= 1
        return create, delete

    async def _create(self, ds: dict[str, Any], node: str, rev: dict[str, Any], cur_hash: str) -> None:
        tmpl = (ds.get("spec") or {}).get("template") or {}
        pod = pod_from_template(ds, tmpl)
        pod["metadata"]["labels"][history.REVISION_HASH_LABEL] = cur_hash
        pod["metadata"]["labels"]["pod-template-generation"] = str(apps.template_generation(ds) or 1)
        du.add_default_tolerations(pod["spec"])
        du.pin_to_node(pod["spec"], node)
        await self.pod_control.create(ds, pod)

    async def _write_status(self, ds: dict[str, Any], nodes: list[dict[str, Any]],
                            by_node: dict[str, list[dict[str, Any]]], cur_hash: str, collisions: int) -> None:
        spec = ds.get("spec") or {}
        tmpl_spec = (spec.get("template") or {}).get("spec") or {}
        mrs = int(spec.get("minReadySeconds") or 0)
        now = podutil.utcnow()
        desired = current = mis = ready = updated = available = 0
        for node in nodes:
            name = node["metadata"]["name"]
            should_run, _ = du.node_should_run(tmpl_spec, node)
            here = [p for p in by_node.get(name, []) if not meta.is_deleting(p)]
            if should_run:
                desired += 1
                if here:
                    current += 1
                    newest = max(here, key=lambda p: p["metadata"].get("creationTimestamp") or "")
                    if podutil.is_ready(newest):
                        ready += 1
                        if podutil.is_available(newest, mrs, now):
                            available += 1
                    if any(_hash_of(p) == cur_hash for p in here):
                        updated += 1
            elif here:
                mis += 1
        st: dict[str, Any] = {"currentNumberScheduled": current, "numberMisscheduled": mis,
                              "desiredNumberScheduled": desired, "numberReady": ready,
                              "observedGeneration": int(ds["metadata"].get("generation") or 0)}
        if updated:
            st["updatedNumberScheduled"] = updated
        if available:
            st["numberAvailable"] = available
        if desired - available:
            st["numberUnavailable"] = desired - available
        if collisions:
            st["collisionCount"] = collisions
        if st == (ds.get("status") or {}):
            return
        body = dict(ds)
        body["status"] = st
        try:
            await self.client.update(DAEMONSETS, body, subresource="status")
        except errors.StatusError as e:
            if e.code != 404:
                raise
        if mrs and ready != available:
            self.queue.add_after(key_of(ds), float(mrs))
