"""The Deployment controller (upstream pkg/controller/deployment): a Deployment
owns ReplicaSets, one per pod template (named `<deploy>-<pod-template-hash>`),
and moves replicas from the old ones to the new one at the pace its strategy
allows. This file is the controller and the steps shared by every strategy
(finding/creating the new ReplicaSet, scaling, cleanup, status); the strategies
themselves live in deployment_rollout.py and the arithmetic in deployment_util.py.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import DEPLOYMENTS, PODS, REPLICASETS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import deployment_util as du
from kybern.controllers.ownership import claim, fresh_owner_check
from kybern.machinery import errors, meta
from kybern.machinery.selectors import selector_matches

log = logging.getLogger(__name__)


def _copy(obj: Any) -> Any:
    return orjson.loads(orjson.dumps(obj))


@dataclass
class Sync:
    """One reconcile pass: the Deployment as last written by us (kept current so
    that later writes in the same pass carry the right resourceVersion)."""
    d: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.d["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.d["metadata"].get("namespace") or "")


class DeploymentController:
    name = "deployment"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 5) -> None:
        self.client = client
        self.workers = workers
        self.d_informer = informers.informer(DEPLOYMENTS)
        self.rs_informer = informers.informer(REPLICASETS)
        self.pod_informer = informers.informer(PODS)
        self.queue = WorkQueue("deployment")
        self.recorder = EventRecorder(client, "deployment-controller")
        self.d_informer.add_handler(lambda t, o, n: self.queue.add(key_of(n)))
        self.rs_informer.add_handler(self._on_rs)
        self.pod_informer.add_handler(self._on_pod)

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    # -- event handlers ----------------------------------------------------------
    def _owner_of(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        ref = meta.controller_of(obj)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.d_informer.get(f"{obj['metadata'].get('namespace')}/{ref.get('name')}")
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return d

    def _on_rs(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if old is not None and (meta.controller_of(old) or {}).get("uid") != \
                (meta.controller_of(new) or {}).get("uid"):
            prev = self._owner_of(old)
            if prev is not None:
                self.queue.add(key_of(prev))
        d = self._owner_of(new)
        if d is not None:
            self.queue.add(key_of(d))
            return
        if typ != "DELETED" and meta.controller_of(new) is None:
            labels = new["metadata"].get("labels") or {}
            for d in self.d_informer.list(new["metadata"].get("namespace")):
                if selector_matches(d.get("spec", {}).get("selector"), labels):
                    self.queue.add(key_of(d))

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        # Recreate waits for old pods to be gone: their deletion is its cue.
        if typ != "DELETED":
            return
        ref = meta.controller_of(new)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.get(f"{new['metadata'].get('namespace')}/{ref.get('name')}")
        if rs is not None:
            d = self._owner_of(rs)
            if d is not None and not du.is_rolling(d):
                self.queue.add(key_of(d))

    # -- reconcile ---------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        from kybern.controllers.deployment_rollout import rollout_recreate, rollout_rolling

        cached = self.d_informer.get(key)
        if cached is None:
            return
        s = Sync(_copy(cached))
        d = s.d
        if d.get("spec", {}).get("selector") == {}:
            self.recorder.event(d, "Warning", "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector is required.")
            st = d.get("status") or {}
            if st.get("observedGeneration", 0) < d["metadata"].get("generation", 0):
                await self._write_status(s, dict(st, observedGeneration=d["metadata"]["generation"]))
            return
        rss = await self._claim_replica_sets(d)
        if meta.is_deleting(d):
            new_rs, old_rss = await self.new_and_old(s, rss, create=False)
            await self.sync_status_only(s, old_rss + [new_rs], new_rs)
            return
        await self._check_paused_conditions(s)
        if d.get("spec", {}).get("paused"):
            await self._sync(s, rss)
            return
        if await self._is_scaling_event(s, rss):
            await self._sync(s, rss)
            return
        if du.is_rolling(d):
            await rollout_rolling(self, s, rss)
        else:
            await rollout_recreate(self, s, rss)

    async def _claim_replica_sets(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        ns = d["metadata"].get("namespace")
        return await claim(self.client, REPLICASETS, d, d.get("spec", {}).get("selector"),
                           self.rs_informer.list(ns), fresh_owner_check(self.client, DEPLOYMENTS, d))

    def pods_of(self, rss: list[dict[str, Any]]) -> list[dict[str, Any]]:
        uids = {rs["metadata"]["uid"] for rs in rss}
        if not rss:
            return []
        ns = rss[0]["metadata"].get("namespace")
        return [p for p in self.pod_informer.list(ns)
                if (meta.controller_of(p) or {}).get("uid") in uids]

    async def new_and_old(self, s: Sync, rss: list[dict[str, Any]], *,
                          create: bool) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """getAllReplicaSetsAndSyncRevision: the new RS (created if asked) and the old ones."""
        found = du.find_new_rs(s.d, rss)
        old = [rs for rs in rss if found is None or rs["metadata"]["uid"] != found["metadata"]["uid"]]
        new_rs = await self._get_new_rs(s, rss, old, found, create)
        return new_rs, old

    async def _get_new_rs(self, s: Sync, rss: list[dict[str, Any]], old: list[dict[str, Any]],
                          existing: dict[str, Any] | None, create: bool) -> dict[str, Any] | None:
        d = s.d
        new_revision = du.max_revision(old) + 1
        if existing is not None:
            rs = _copy(existing)
            changed = du.set_new_rs_annotations(d, rs, new_revision, True)
            min_ready = d.get("spec", {}).get("minReadySeconds", 0) or 0
            if changed or (rs.get("spec", {}).get("minReadySeconds", 0) or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                return await self.client.update(REPLICASETS, rs)
            await self._set_revision(s, (rs["metadata"].get("annotations") or {}).get(du.REVISION, ""))
            st = _copy(s.d.get("status") or {})
            if du.has_progress_deadline(s.d) and du.get_condition(st, "Progressing") is None:
                du.set_condition(st, du.new_condition("Progressing", "True", du.REASON_FOUND_NEW_RS,
                                                      f'Found new replica set "{rs["metadata"]["name"]}"'))
                await self._write_status(s, st)
            return rs
        if not create:
            return None
        return await self._create_new_rs(s, old, new_revision)

    async def _create_new_rs(self, s: Sync, old: list[dict[str, Any]], new_revision: int) -> dict[str, Any] | None:
        d = s.d
        spec = d.get("spec", {})
        collision = (d.get("status") or {}).get("collisionCount")
        tmpl = _copy(spec.get("template") or {})
        h = du.compute_hash(tmpl, collision)
        tmeta = tmpl.setdefault("metadata", {})
        tmeta["labels"] = dict(tmeta.get("labels") or {}, **{du.HASH_LABEL: h})
        selector = _copy(spec.get("selector") or {})
        selector["matchLabels"] = dict(selector.get("matchLabels") or {}, **{du.HASH_LABEL: h})
        name = f"{s.name}-{h}"
        rs: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": s.namespace, "labels": dict(tmeta["labels"]),
                         "ownerReferences": [meta.owner_ref(d, controller=True)]},
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0) or 0,
                     "selector": selector, "template": tmpl},
            "status": {"replicas": 0},  # what a Go client sends (replicas has no omitempty)
        }
        count = du.new_rs_new_replicas(d, old + [rs], rs)
        rs["spec"]["replicas"] = count
        du.set_new_rs_annotations(d, rs, new_revision, False)
        already = False
        try:
            created = await self.client.create(REPLICASETS, rs, s.namespace)
        except errors.StatusError as e:
            if e.code == 409 and e.reason == "AlreadyExists":
                live = await self.client.get(REPLICASETS, name, s.namespace)
                ref = meta.controller_of(live)
                if ref and ref.get("uid") == d["metadata"]["uid"] and \
                        du.equal_ignore_hash(live["spec"]["template"], spec.get("template") or {}):
                    created, already = live, True
                else:  # a hash collision: bump collisionCount so the next try gets a new name
                    st = _copy(d.get("status") or {})
                    st["collisionCount"] = int(st.get("collisionCount") or 0) + 1
                    await self._write_status(s, st)
                    raise
            else:
                msg = f'Failed to create new replica set "{name}": {e.message}'
                if du.has_progress_deadline(d):
                    st = _copy(d.get("status") or {})
                    du.set_condition(st, du.new_condition("Progressing", "False",
                                                          du.REASON_RS_CREATE_ERROR, msg))
                    try:
                        await self._write_status(s, st)
                    except errors.StatusError:
                        pass
                self.recorder.event(d, "Warning", du.REASON_RS_CREATE_ERROR, msg)
                raise
        if not already and count > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {created['metadata']['name']} from 0 to {count}")
        await self._set_revision(s, str(new_revision))
        if not already and du.has_progress_deadline(s.d):
            st = _copy(s.d.get("status") or {})
            du.set_condition(st, du.new_condition("Progressing", "True", du.REASON_NEW_RS,
                                                  f'Created new replica set "{created["metadata"]["name"]}"'))
            await self._write_status(s, st)
        return created

    async def _set_revision(self, s: Sync, rev: str) -> None:
        if not rev or (s.d["metadata"].get("annotations") or {}).get(du.REVISION) == rev:
            return
        s.d = await self.client.patch(DEPLOYMENTS, s.name,
                                      {"metadata": {"annotations": {du.REVISION: rev}}}, s.namespace)

    async def _write_status(self, s: Sync, status: dict[str, Any]) -> None:
        obj = dict(s.d)
        obj["status"] = du.clean_status(status)
        s.d = await self.client.update(DEPLOYMENTS, obj, subresource="status")

    # -- scaling -----------------------------------------------------------------
    async def scale_rs(self, s: Sync, rs: dict[str, Any], new_scale: int) -> tuple[bool, dict[str, Any]]:
        """Set an RS's size and its desired/max annotations; event when the size changes."""
        d = s.d
        want, max_total = du.replicas(d), du.replicas(d) + du.max_surge(d)
        old_scale = du.rs_replicas(rs)
        size_changed = old_scale != new_scale
        if not size_changed and not du.replicas_annotations_need_update(rs, want, max_total):
            return False, rs
        patch = {"metadata": {"annotations": {du.DESIRED_REPLICAS: str(want),
                                              du.MAX_REPLICAS: str(max_total)}},
                 "spec": {"replicas": new_scale}}
        m = rs["metadata"]
        updated = await self.client.patch(REPLICASETS, m["name"], patch, m.get("namespace"))
        if size_changed:
            op = "up" if old_scale < new_scale else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {op} replica set {m['name']} from {old_scale} to {new_scale}")
        return size_changed, updated

    async def _is_scaling_event(self, s: Sync, rss: list[dict[str, Any]]) -> bool:
        new_rs, old = await self.new_and_old(s, rss, create=False)
        for rs in du.active(old + [new_rs]):
            desired = du.annotation_int(rs, du.DESIRED_REPLICAS)
            if desired is not None and desired != du.replicas(s.d):
                return True
        return False

    async def _sync(self, s: Sync, rss: list[dict[str, Any]]) -> None:
        """Scaling event or paused: resize proportionally, never roll."""
        new_rs, old = await self.new_and_old(s, rss, create=False)
        new_rs, old = await self._scale(s, new_rs, old)
        if s.d.get("spec", {}).get("paused"):
            await self.cleanup(s, old)
        await self.sync_status_only(s, old + [new_rs], new_rs)

    async def _scale(self, s: Sync, new_rs: dict[str, Any] | None,
                     old: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        d = s.d
        want = du.replicas(d)
        allrs = [rs for rs in [new_rs] + old if rs is not None]
        act = du.active(allrs)
        target: dict[str, Any] | None = None
        if len(act) == 1:
            target = act[0]
        elif not act and allrs:
            target = new_rs or max(old, key=lambda r: r["metadata"].get("creationTimestamp") or "")
        updated: dict[str, dict[str, Any]] = {}
        if target is not None:
            if du.rs_replicas(target) != want:
                _, updated[target["metadata"]["uid"]] = await self.scale_rs(s, target, want)
        elif du.is_saturated(d, new_rs):
            for rs in du.active(old):
                _, updated[rs["metadata"]["uid"]] = await self.scale_rs(s, rs, 0)
        elif du.is_rolling(d):
            allowed = want + du.max_surge(d) if want > 0 else 0
            to_add = allowed - du.sum_spec(act)
            ordered = du.by_size_newer(act) if to_add > 0 else du.by_size_older(act)
            added = 0
            sizes: dict[str, int] = {}
            for rs in ordered:
                if to_add != 0:
                    p = du.proportion(rs, d, to_add, added)
                    sizes[rs["metadata"]["uid"]] = du.rs_replicas(rs) + p
                    added += p
                else:
                    sizes[rs["metadata"]["uid"]] = du.rs_replicas(rs)
            for i, rs in enumerate(ordered):
                uid = rs["metadata"]["uid"]
                if i == 0 and to_add != 0:
                    sizes[uid] = max(sizes[uid] + to_add - added, 0)
                _, updated[uid] = await self.scale_rs(s, rs, sizes[uid])
        repl = lambda rs: updated.get(rs["metadata"]["uid"], rs)
        return (repl(new_rs) if new_rs is not None else None), [repl(rs) for rs in old]

    async def cleanup(self, s: Sync, old: list[dict[str, Any]]) -> None:
        """Delete old ReplicaSets beyond revisionHistoryLimit (oldest revisions first)."""
        limit = s.d.get("spec", {}).get("revisionHistoryLimit", 10)
        if limit is None:
            return
        alive = [rs for rs in old if not meta.is_deleting(rs)]
        diff = len(alive) - int(limit)
        for rs in du.by_revision(alive)[:max(diff, 0)]:
            st = rs.get("status") or {}
            if st.get("replicas", 0) != 0 or du.rs_replicas(rs) != 0 or \
                    rs["metadata"].get("generation", 0) > st.get("observedGeneration", 0):
                continue
            try:
                await self.client.delete(REPLICASETS, rs["metadata"]["name"], s.namespace)
            except errors.StatusError as e:
                if e.code != 404:
                    raise

    async def _check_paused_conditions(self, s: Sync) -> None:
        d = s.d
        if not du.has_progress_deadline(d):
            return
        st = _copy(d.get("status") or {})
        cond = du.get_condition(st, "Progressing")
        if cond is not None and cond.get("reason") == du.REASON_TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == du.REASON_PAUSED
        if d.get("spec", {}).get("paused") and not paused_cond:
            du.set_condition(st, du.new_condition("Progressing", "Unknown", du.REASON_PAUSED,
                                                  "Deployment is paused"))
        elif not d.get("spec", {}).get("paused") and paused_cond:
            du.set_condition(st, du.new_condition("Progressing", "Unknown", du.REASON_RESUMED,
                                                  "Deployment is resumed"))
        else:
            return
        await self._write_status(s, st)

    # -- status ------------------------------------------------------------------
    async def sync_status_only(self, s: Sync, all_rss: list[dict[str, Any] | None],
                               new_rs: dict[str, Any] | None) -> None:
        st = du.calculate_status(s.d, all_rss, new_rs)
        if du.clean_status(st) != du.clean_status(s.d.get("status") or {}):
            await self._write_status(s, st)

    async def sync_status(self, s: Sync, all_rss: list[dict[str, Any] | None],
                          new_rs: dict[str, Any] | None) -> None:
        """syncRolloutStatus: counts plus the Progressing/Available/ReplicaFailure conditions."""
        d = s.d
        st = du.calculate_status(d, all_rss, new_rs)
        if not du.has_progress_deadline(d):
            du.remove_condition(st, "Progressing")
        cur = du.get_condition(d.get("status") or {}, "Progressing")
        done = st["replicas"] == st["updatedReplicas"] and cur is not None and \
            cur.get("reason") == du.REASON_NEW_RS_AVAILABLE
        if du.has_progress_deadline(d) and not done:
            what = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{s.name}"'
            if du.complete(d, st):
                du.set_condition(st, du.new_condition("Progressing", "True", du.REASON_NEW_RS_AVAILABLE,
                                                      f"{what} has successfully progressed."))
            elif du.progressing(d, st):
                c = du.new_condition("Progressing", "True", du.REASON_RS_UPDATED, f"{what} is progressing.")
                if cur is not None:
                    if cur.get("status") == "True":
                        c["lastTransitionTime"] = cur.get("lastTransitionTime")
                    du.remove_condition(st, "Progressing")
                du.set_condition(st, c)
            elif du.timed_out(d, st):
                du.set_condition(st, du.new_condition("Progressing", "False", du.REASON_TIMED_OUT,
                                                      f"{what} has timed out progressing."))
        failure = None
        for rs in [new_rs] + [r for r in all_rss if r is not new_rs]:
            if rs is not None:
                failure = failure or du.get_condition(rs.get("status") or {}, "ReplicaFailure")
        if failure is not None:
            du.set_condition(st, {"type": "ReplicaFailure", "status": failure.get("status", "True"),
                                  "lastUpdateTime": failure.get("lastTransitionTime"),
                                  "lastTransitionTime": failure.get("lastTransitionTime"),
                                  "reason": failure.get("reason", ""),
                                  "message": failure.get("message", "")})
        else:
            du.remove_condition(st, "ReplicaFailure")
        if du.clean_status(st) != du.clean_status(d.get("status") or {}):
            await self._write_status(s, st)
        self._requeue_stuck(s)

    def _requeue_stuck(self, s: Sync) -> None:
        """Wake up when the progress deadline would pass, to report ProgressDeadlineExceeded."""
        d = s.d
        st = d.get("status") or {}
        cond = du.get_condition(st, "Progressing")
        if not du.has_progress_deadline(d) or cond is None or cond.get("status") != "True" \
                or cond.get("reason") == du.REASON_NEW_RS_AVAILABLE or du.complete(d, st):
            return
        if not cond.get("lastUpdateTime"):
            return
        deadline = int(d.get("spec", {}).get("progressDeadlineSeconds", 600))
        at = meta.parse_time(cond["lastUpdateTime"]) + _dt.timedelta(seconds=deadline)
        delay = (at - _dt.datetime.now(_dt.UTC)).total_seconds()
        self.queue.add_after(key_of(d), max(delay, 0) + 1)
