"""The Job controller (upstream pkg/controller/job) and the TTL-after-finished
rule: run pods from the template until `completions` succeed (or, without
completions, until one does and the rest stop), at most `parallelism` at once,
and finish with a Complete or Failed condition.

Counting is robust to pods disappearing, as upstream's finalizer tracking: every
pod carries the `batch.kubernetes.io/job-tracking` finalizer; a finished pod's uid
is first written to status.uncountedTerminatedPods, then the finalizer is
removed, then the uid moves into status.succeeded/failed. So a pod deleted the
moment it finishes is still counted, and never twice.

Terminal conditions are two-step as in 1.32: SuccessCriteriaMet / FailureTarget
as soon as the outcome is known, then Complete / Failed once no pod of the Job
is still terminating.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import JOBS, PODS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import jobutil as ju
from kybern.controllers import podutil
from kybern.controllers.expectations import Expectations
from kybern.controllers.ownership import claim, fresh_owner_check
from kybern.controllers.podcontrol import PodControl, PodIndex, deep_copy, pod_from_template
from kybern.controllers.replicaset import slow_start_batch
from kybern.machinery import errors, meta
from kybern.machinery.selectors import selector_matches

log = logging.getLogger(__name__)

BURST = 500


class JobController:
    name = "job"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 5) -> None:
        self.client = client
        self.workers = workers
        self.job_informer = informers.informer(JOBS)
        self.pod_informer = informers.informer(PODS)
        self.pods = PodIndex(self.pod_informer)
        self.queue = WorkQueue("job")
        self.expectations = Expectations()
        self.recorder = EventRecorder(client, "job-controller")
        self.pod_control = PodControl(client, self.recorder)
        self._we_deleted: set[str] = set()  # pod uids removed by us: not failures
        self._last_failure: dict[str, float] = {}
        self.job_informer.add_handler(self._on_job)
        self.pod_informer.add_handler(self._on_pod)

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    def _on_job(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ == "DELETED":
            self.expectations.delete(key_of(new))
        self.queue.add(key_of(new))

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        ref = meta.controller_of(new)
        ns = new["metadata"].get("namespace")
        if ref is not None and ref.get("kind") == "Job":
            key = f"{ns}/{ref.get('name')}"
            job = self.job_informer.get(key)
            if (job is None or job["metadata"].get("uid") != ref.get("uid")) and typ != "DELETED" and \
                    ju.TRACKING_FINALIZER in (new["metadata"].get("finalizers") or []):
                self.queue.add("orphan:" + key_of(new))  # its Job is gone: let the pod go
                return
            if typ == "ADDED" and old is None:
                self.expectations.creation_observed(key)
            if typ == "DELETED" or meta.is_deleting(new):
                self.expectations.deletion_observed(key, key_of(new))
            self.queue.add(key)
        elif ref is None and typ != "DELETED":
            labels = new["metadata"].get("labels") or {}
            for job in self.job_informer.list(ns):
                if selector_matches(ju.default_selector(job), labels):
                    self.queue.add(key_of(job))

    # -- reconcile -----------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        if key.startswith("orphan:"):
            await self._release_orphan(key[len("orphan:"):])
            return
        cached = self.job_informer.get(key)
        if cached is None:
            self.expectations.delete(key)
            self._last_failure.pop(key, None)
            return
        job = deep_copy(cached)
        if ju.is_finished(job):
            await self._release_finished(job)
            await self._ttl(key, job)
            return
        uid = job["metadata"]["uid"]
        ns = job["metadata"].get("namespace") or ""
        candidates = self.pods.owned(uid) + self.pods.orphans(ns)
        pods = await claim(self.client, PODS, job, ju.default_selector(job), candidates,
                           fresh_owner_check(self.client, JOBS, job))
        await self._sync(key, job, pods)

    async def _sync(self, key: str, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        spec = job.get("spec") or {}
        status: dict[str, Any] = deep_copy(job.get("status") or {})
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        counted = set(uncounted.get("succeeded") or []) | set(uncounted.get("failed") or [])
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        # indexes past completions (an elastic Indexed Job scaled down) no longer count
        completed = {i for i in ju.parse_indexes(status.get("completedIndexes")) if i < int(completions or 0)} \
            if indexed else set()
        fail_message: tuple[str, str] | None = None  # (reason, message)
        release: list[dict[str, Any]] = []  # pods whose finalizer can go now
        new_failures = 0
        active = [p for p in pods if podutil.is_active(p)]
        per_index = ju.per_index(job)
        # podReplacementPolicy Failed (always so with a podFailurePolicy): a deleted pod is a
        # failure only once its phase says so, and it is not replaced before (onlyReplaceFailedPods)
        only_failed = spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None
        failed_indexes: set[int] = set()
        delayed: dict[int, dict[str, Any]] = {}  # index -> the failed pod its replacement counts on
        if per_index:
            failed_indexes, delayed = self._index_failures(job, pods, active, completed)
        for p in pods:
            puid = p["metadata"]["uid"]
            has_fin = ju.TRACKING_FINALIZER in (p["metadata"].get("finalizers") or [])
            if puid in counted:
                if has_fin:
                    release.append(p)
                continue
            if ju.pod_succeeded(p):
                if not has_fin:
                    continue  # counted long ago
                idx = ju.completion_index(p)
                if indexed and (idx is None or idx >= int(completions or 0)):
                    release.append(p)
                    continue
                if indexed and idx is not None:
                    completed.add(idx)
                uncounted.setdefault("succeeded", []).append(puid)
                release.append(p)
            elif ju.pod_failed(p) or (meta.is_deleting(p) and puid not in self._we_deleted and not only_failed):
                if not has_fin:
                    continue
                if per_index and delayed.get(ju.completion_index(p) or 0) is p:
                    continue  # kept, finalizer and all, until its replacement carries its count
                action, msg = ju.match_failure_policy(job, p) if ju.pod_failed(p) else (None, "")
                release.append(p)
                if action == "Ignore":
                    continue
                if action == "FailJob" and fail_message is None:
                    fail_message = ("PodFailurePolicy", msg)
                uncounted.setdefault("failed", []).append(puid)
                new_failures += 1
            elif meta.is_deleting(p) and has_fin and not only_failed:
                release.append(p)
        if new_failures:
            self._last_failure[key] = time.monotonic()

        terminating = [p for p in pods if meta.is_deleting(p) and not ju.pod_succeeded(p)
                       and not ju.pod_failed(p)]
        succeeded = int(status.get("succeeded") or 0) + len(uncounted.get("succeeded") or [])
        failed = int(status.get("failed") or 0) + len(uncounted.get("failed") or [])
        if indexed:
            succeeded = len(completed)
            status["succeeded"] = succeeded
            status["completedIndexes"] = ju.format_indexes(completed)

        # -- outcome -----------------------------------------------------------------
        backoff_limit = int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
        target = ju.condition(job, "FailureTarget")
        met = ju.condition(job, "SuccessCriteriaMet")
        already_met = met is not None and met.get("status") == "True"
        if already_met:  # the outcome is known: no pod failure changes it (upstream's order)
            fail_message = None
        elif target is not None and target.get("status") == "True":
            fail_message = (str(target.get("reason")), str(target.get("message")))
        elif fail_message is None and (failed > backoff_limit or ju.past_backoff_limit_on_failure(job, pods)):
            fail_message = ("BackoffLimitExceeded", ju.MSG_BACKOFF)
        elif fail_message is None and self._past_deadline(job):
            fail_message = ("DeadlineExceeded", ju.MSG_DEADLINE)
        if per_index:
            status["failedIndexes"] = ju.format_indexes(failed_indexes)
            max_failed = spec.get("maxFailedIndexes")
            if fail_message is not None or already_met:
                pass
            elif max_failed is not None and len(failed_indexes) > int(max_failed):
                fail_message = ("MaxFailedIndexesExceeded", ju.MSG_MAX_FAILED_INDEXES)
            elif failed_indexes and len(failed_indexes) + len(completed) >= int(completions or 0):
                fail_message = ("FailedIndexes", ju.MSG_FAILED_INDEXES)
        if fail_message is not None:
            # a failed Job's unfinished pods count as failed (trackJobStatusAndRemoveFinalizers)
            for p in pods:
                puid = p["metadata"]["uid"]
                if ju.TRACKING_FINALIZER in (p["metadata"].get("finalizers") or []) and not ju.pod_succeeded(p) \
                        and puid not in counted and puid not in (uncounted.get("failed") or []):
                    uncounted.setdefault("failed", []).append(puid)
                    if p not in release:
                        release.append(p)
            failed = int(status.get("failed") or 0) + len(uncounted.get("failed") or [])
        if completions is None:
            done = succeeded > 0 and not active
            success = succeeded > 0
        else:
            success = succeeded >= int(completions)
            done = success
        success_reason = ("CompletionsReached", ju.MSG_COMPLETIONS)
        if (already_met or (indexed and fail_message is None and ju.match_success_policy(job, completed))) \
                and uncounted.get("failed"):
            # the lingering pods this Job removed once it met its success criteria are not
            # failures, even if a status write was refused before their finalizers went
            prior = set(((job.get("status") or {}).get("uncountedTerminatedPods") or {}).get("failed") or [])
            uncounted["failed"] = [u for u in uncounted["failed"] if u in prior or u not in self._we_deleted]
        if already_met and met is not None:
            success, success_reason = True, (str(met.get("reason")), str(met.get("message")))
        elif indexed and fail_message is None and (policy := ju.match_success_policy(job, completed)):
            success, success_reason = True, ("SuccessPolicy", policy)  # the rest of the pods go
        suspended = bool(spec.get("suspend"))
        self._suspend_condition(job, status, suspended)

        manage_error: Exception | None = None
        # the finish event is recorded once the status saying so is written: a sync from a
        # stale cache computes the same finish, and its write is refused (409), not repeated
        finish_event: tuple[str, str, str] | None = None
        if fail_message is not None:
            ju.set_condition(status, "FailureTarget", "True", *fail_message)
            await self._delete_all(job, active)
            if not active and not terminating and ju.set_condition(status, "Failed", "True", *fail_message):
                finish_event = ("Warning", fail_message[0], fail_message[1])
        elif success:
            ju.set_condition(status, "SuccessCriteriaMet", "True", *success_reason)
            if completions is not None or done:
                await self._delete_all(job, active)
                # the outcome is written first; the lingering pods then go uncounted (upstream
                # removes a finished Job's finalizers at once: canRemoveFinalizer)
                release += [p for p in active + terminating if p not in release and
                            ju.TRACKING_FINALIZER in (p["metadata"].get("finalizers") or [])]
                if not active and not terminating:
                    ju.set_condition(status, "Complete", "True", *success_reason)
                    status["completionTime"] = meta.now()
                    finish_event = ("Normal", "Completed", "Job completed")
        elif suspended:
            # startTime stays (upstream resets it only on resume): a Job that ran keeps its
            # pod template's scheduling directives immutable while suspended
            await self._delete_all(job, active)
        else:
            if not status.get("startTime"):
                status["startTime"] = meta.now()
                if spec.get("activeDeadlineSeconds") is not None:
                    self.queue.add_after(key, float(spec["activeDeadlineSeconds"]))
            # a Job being deleted makes no pods (upstream's syncJob calls manageJob only without a
            # deletionTimestamp): while an orphaning delete strips its pods' ownerReferences it
            # would otherwise count none and start another, which the GC then deletes
            if self.expectations.satisfied(key) and not meta.is_deleting(job):
                try:
                    await self._manage(key, job, active, succeeded, completed | failed_indexes, failed, delayed,
                                       terminating if only_failed else [])
                except Exception as e:  # noqa: BLE001 - status still written, then retried
                    manage_error = e
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if podutil.is_ready(p))
        status["terminating"] = len(terminating)
        await self._write_tracking(job, status, release, finish_event)
        if manage_error is not None:
            raise manage_error

    def _past_deadline(self, job: dict[str, Any]) -> bool:
        ads = (job.get("spec") or {}).get("activeDeadlineSeconds")
        start = (job.get("status") or {}).get("startTime")
        if ads is None or not start:
            return False
        return podutil.utcnow() >= meta.parse_time(start) + _dt.timedelta(seconds=int(ads))

    def _suspend_condition(self, job: dict[str, Any], status: dict[str, Any], suspended: bool) -> bool:
        cur = ju.condition(job, "Suspended")
        if suspended and (cur is None or cur.get("status") != "True"):
            ju.set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended")
            self.recorder.event(job, "Normal", "Suspended", "Job suspended")
            return True
        if not suspended and cur is not None and cur.get("status") == "True":
            ju.set_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
            self.recorder.event(job, "Normal", "Resumed", "Job resumed")
            status.pop("startTime", None)
            return True
        return False

    def _index_failures(self, job: dict[str, Any], pods: list[dict[str, Any]], active: list[dict[str, Any]],
                        completed: set[int]) -> tuple[set[int], dict[int, dict[str, Any]]]:
        """backoffLimitPerIndex: the failed indexes (status.failedIndexes and those failed
        since: calculateFailedIndexes) and, per index to retry, the failed pod whose
        finalizer stays until its replacement is created with its failure count
        (getPodsWithDelayedDeletionPerIndex)."""
        spec = job.get("spec") or {}
        n = int(spec.get("completions") or 0)
        failed = {i for i in ju.parse_indexes((job.get("status") or {}).get("failedIndexes")) if i < n}
        only_failed = spec.get("podReplacementPolicy") == "Failed"
        done = completed | {i for p in pods if ju.pod_succeeded(p) and (i := ju.completion_index(p)) is not None}
        candidates: list[tuple[int, dict[str, Any]]] = []
        for p in pods:
            i = ju.completion_index(p)
            if i is None or i >= n or ju.TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []):
                continue
            is_failed = ju.pod_failed(p) if only_failed else ju.is_failed(p)
            if ju.index_failed(job, p, is_failed):
                failed.add(i)
            if is_failed:
                candidates.append((i, p))
        running = {i for p in active if (i := ju.completion_index(p)) is not None}
        delayed: dict[int, dict[str, Any]] = {}
        for i, p in candidates:
            if i in done or i in failed or i in running:
                continue
            last = delayed.get(i)
            if last is None or (sum(ju.index_failure_counts(last)) <= sum(ju.index_failure_counts(p))
                                and ju.finished_time(p) >= ju.finished_time(last)):
                delayed[i] = p
        return failed, delayed

    def _index_backoff(self, pod: dict[str, Any] | None) -> float:
        """getRemainingTimePerIndex: the index's own backoff, from its last failure."""
        if pod is None:
            return 0.0
        delay = ju.backoff_delay(sum(ju.index_failure_counts(pod)) + 1)
        finished = ju.finished_time(pod)
        if not finished:
            return 0.0
        return delay - (podutil.utcnow() - meta.parse_time(finished)).total_seconds()

    async def _manage(self, key: str, job: dict[str, Any], active: list[dict[str, Any]],
                      succeeded: int, completed: set[int], failed: int,
                      delayed: dict[int, dict[str, Any]] | None = None,
                      terminating: list[dict[str, Any]] | None = None) -> None:
        spec = job.get("spec") or {}
        parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
        completions = spec.get("completions")
        indexed = spec.get("completionMode") == "Indexed"
        if indexed:
            n = int(completions or 0)
            by_index: dict[int, list[dict[str, Any]]] = {}
            excess = []
            for p in active:
                i = ju.completion_index(p)
                if i is None or i >= n or i in completed or i in by_index:
                    excess.append(p)
                else:
                    by_index.setdefault(i, []).append(p)
            held = {i for p in terminating or [] if (i := ju.completion_index(p)) is not None}
            pending = [i for i in range(n) if i not in completed and i not in by_index and i not in held]
            room = max(0, parallelism - len(by_index) - len(held))
            to_create: list[int | None] = list(pending[:room])
        else:
            if completions is None:
                want = 0 if succeeded > 0 else parallelism
            else:
                want = min(parallelism, max(0, int(completions) - succeeded))
            excess = []
            if len(active) > want:
                from kybern.controllers.deletion_order import rank_for_deletion
                excess = rank_for_deletion(active, active)[: len(active) - want]
            to_create = [None] * max(0, want - len(terminating or []) - len(active))
        if excess:
            self.expectations.expect_deletions(key, [key_of(p) for p in excess])
            await self._delete_all(job, excess)
            return
        if not to_create:
            return
        if ju.per_index(job):
            # each index waits out its own backoff (getPodCreationInfoForIndependentIndexes)
            waits = {i: self._index_backoff((delayed or {}).get(i)) for i in to_create if i is not None}
            to_create = [i for i in to_create if waits.get(i, 0.0) <= 0]
            if not to_create:
                self.queue.add_after(key, min(waits.values()))
                return
        else:
            delay = self._backoff_remaining(key, failed)
            if delay > 0:
                self.queue.add_after(key, delay)
                return
        to_create = to_create[:BURST]
        self.expectations.expect_creations(key, len(to_create))
        it = iter(to_create)

        def create_next() -> Any:
            index = next(it)
            return self._create(job, index, (delayed or {}).get(index) if index is not None else None)
        done, err = await slow_start_batch(len(to_create), create_next)
        for _ in range(len(to_create) - done):
            self.expectations.creation_observed(key)
        if err is not None:
            raise err

    def _backoff_remaining(self, key: str, failed: int) -> float:
        last = self._last_failure.get(key)
        if last is None or failed <= 0:
            return 0.0
        return ju.backoff_delay(failed) - (time.monotonic() - last)

    async def _create(self, job: dict[str, Any], index: int | None, replaced: dict[str, Any] | None = None) -> None:
        m = job["metadata"]
        tmpl = (job.get("spec") or {}).get("template") or {}
        gen = f"{m['name']}-{index}-" if index is not None else f"{m['name']}-"
        pod = pod_from_template(job, tmpl, generate_name=gen)
        pm = pod["metadata"]
        labels = pm["labels"]
        for k, v in ((ju.CONTROLLER_UID_LABEL, m["uid"]), (ju.JOB_NAME_LABEL, m["name"]),
                     (ju.LEGACY_CONTROLLER_UID_LABEL, m["uid"]), (ju.LEGACY_JOB_NAME_LABEL, m["name"])):
            labels.setdefault(k, v)
        pm["finalizers"] = [*(pm.get("finalizers") or []), ju.TRACKING_FINALIZER]
        if index is not None:
            annotations = pm.setdefault("annotations", {})
            annotations[ju.INDEX_ANNOTATION] = str(index)
            labels[ju.INDEX_LABEL] = str(index)
            if ju.per_index(job):
                failures, ignored = ju.new_index_failure_counts(job, replaced)
                annotations[ju.INDEX_FAILURE_COUNT] = str(failures)
                if ignored:
                    annotations[ju.INDEX_IGNORED_FAILURE_COUNT] = str(ignored)
            spec = pod["spec"]
            spec.setdefault("hostname", f"{m['name']}-{index}")
            env = {"name": ju.INDEX_ENV, "valueFrom": {"fieldRef": {
                "apiVersion": "v1", "fieldPath": f"metadata.labels['{ju.INDEX_LABEL}']"}}}
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                if not any(e.get("name") == ju.INDEX_ENV for e in c.get("env") or []):
                    c["env"] = [*(c.get("env") or []), env]
        await self.pod_control.create(job, pod)

    async def _delete_all(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        for p in pods:
            self._we_deleted.add(p["metadata"]["uid"])
        results = await asyncio.gather(*(self.pod_control.delete(job, p) for p in pods
                                         if not meta.is_deleting(p)), return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                raise r

    # -- status and finalizers ----------------------------------------------------
    async def _write_tracking(self, job: dict[str, Any], status: dict[str, Any],
                              release: list[dict[str, Any]],
                              finish_event: tuple[str, str, str] | None = None) -> None:
        """uncounted uids first, then finalizers off, then the uids into counters."""
        was_finished = ju.is_finished(job)
        job = await self._write_status(job, status)
        if job is None:
            return
        if finish_event is not None and not was_finished:
            self.recorder.event(job, *finish_event)
        released = set()
        results = await asyncio.gather(*(self._remove_finalizer(p) for p in release),
                                       return_exceptions=True)
        for p, r in zip(release, results):
            if r is True:
                released.add(p["metadata"]["uid"])
                self._we_deleted.discard(p["metadata"]["uid"])
        status = deep_copy(job.get("status") or {})
        unc = status.get("uncountedTerminatedPods") or {}
        live = {p["metadata"]["uid"] for p in self.pods.owned(job["metadata"]["uid"])
                if ju.TRACKING_FINALIZER in (p["metadata"].get("finalizers") or [])} - released
        moved = False
        for field in ("succeeded", "failed"):
            keep = [u for u in unc.get(field) or [] if u in live]
            gone = len(unc.get(field) or []) - len(keep)
            if gone:
                moved = True
                if field == "failed" or (job.get("spec") or {}).get("completionMode") != "Indexed":
                    status[field] = int(status.get(field) or 0) + gone
                unc[field] = keep
        if moved:
            status["uncountedTerminatedPods"] = {k: v for k, v in unc.items() if v}
            await self._write_status(job, status)
        for r in results:
            if isinstance(r, Exception):
                raise r

    async def _remove_finalizer(self, pod: dict[str, Any]) -> bool:
        m = pod["metadata"]
        try:
            await self.client.patch(PODS, m["name"], {"metadata": {
                "$deleteFromPrimitiveList/finalizers": [ju.TRACKING_FINALIZER]}}, m.get("namespace"),
                patch_type="strategic")
        except errors.StatusError as e:
            if e.code != 404:
                raise
        return True

    async def _write_status(self, job: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        unc = status.get("uncountedTerminatedPods") or {}
        status["uncountedTerminatedPods"] = {k: v for k, v in unc.items() if v}
        if status.get("completedIndexes") == "" and \
                (job.get("spec") or {}).get("completionMode") != "Indexed":
            status.pop("completedIndexes")
        for k in ("succeeded", "failed", "active"):
            if not status.get(k):
                status.pop(k, None)
        if status == (job.get("status") or {}):
            return job
        body = dict(job)
        body["status"] = status
        try:
            return await self.client.update(JOBS, body, subresource="status")
        except errors.StatusError as e:
            if e.code == 404:
                return None
            raise  # 409: retried with a fresh cache

    async def _release_finished(self, job: dict[str, Any]) -> None:
        """A finished Job lets go of every pod still holding its finalizer."""
        left = [p for p in self.pods.owned(job["metadata"]["uid"])
                if ju.TRACKING_FINALIZER in (p["metadata"].get("finalizers") or [])]
        await asyncio.gather(*(self._remove_finalizer(p) for p in left))

    async def _release_orphan(self, pod_key: str) -> None:
        pod = self.pod_informer.get(pod_key)
        ref = meta.controller_of(pod) if pod is not None else None
        if pod is None or ref is None:
            return
        try:
            live = await self.client.get(JOBS, str(ref.get("name")), pod["metadata"].get("namespace"))
            if live["metadata"].get("uid") == ref.get("uid"):
                return  # still there: the Job's own sync decides
        except errors.StatusError as e:
            if e.code != 404:
                raise
        await self._remove_finalizer(pod)

    async def _ttl(self, key: str, job: dict[str, Any]) -> None:
        """ttlSecondsAfterFinished: delete the Job (and, in the foreground, its pods)."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        finished = ju.finish_time(job)
        if ttl is None or not finished or meta.is_deleting(job):
            return
        expire = meta.parse_time(finished) + _dt.timedelta(seconds=int(ttl))
        left = (expire - podutil.utcnow()).total_seconds()
        if left > 0:
            self.queue.add_after(key, left)
            return
        m = job["metadata"]
        try:
            await self.client.delete(JOBS, m["name"], m.get("namespace"), propagation_policy="Foreground",
                                     preconditions={"uid": m["uid"]})
        except errors.StatusError as e:
            if e.code not in (404, 409):
                raise
