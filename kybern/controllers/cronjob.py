"""The CronJob controller (upstream pkg/controller/cronjob, the v2 controller):
create a Job from `spec.jobTemplate` at each time `spec.schedule` names, in
`spec.timeZone`, named `<cronjob>-<scheduled time in minutes since the epoch>`.

Each reconcile: bring status.active up to date from the owned Jobs (a finished
one leaves it, "SawCompletedJob"), prune history beyond successful/
failedJobsHistoryLimit, then, unless suspended, start the most recent missed
run if it is still within startingDeadlineSeconds and the concurrencyPolicy
allows; finally requeue for the next scheduled time.
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import CRONJOBS, JOBS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import jobutil as ju
from kybern.controllers import podutil
from kybern.controllers.podcontrol import deep_copy
from kybern.machinery import cron as cs
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def job_name(cronjob: str, scheduled: _dt.datetime) -> str:
    """getJobName: the scheduled time in minutes, so one run per minute at most."""
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


def _fmt(t: _dt.datetime) -> str:
    return t.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_from_template(cj: dict[str, Any], scheduled: _dt.datetime, tz: _dt.tzinfo) -> dict[str, Any]:
    tmpl = (cj.get("spec") or {}).get("jobTemplate") or {}
    tmeta = tmpl.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = scheduled.astimezone(tz).isoformat()
    m = cj["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name(m["name"], scheduled), "namespace": m.get("namespace"),
                         "labels": dict(tmeta.get("labels") or {}), "annotations": annotations,
                         "ownerReferences": [meta.owner_ref(cj, controller=True)]},
            "spec": deep_copy(tmpl.get("spec") or {})}


def _ref(job: dict[str, Any]) -> dict[str, Any]:
    m = job["metadata"]
    return {"kind": "Job", "namespace": m.get("namespace"), "name": m["name"], "uid": m["uid"],
            "apiVersion": "batch/v1", "resourceVersion": m.get("resourceVersion")}


class CronJobController:
    name = "cronjob"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 2) -> None:
        self.client = client
        self.workers = workers
        self.cj_informer = informers.informer(CRONJOBS)
        self.job_informer = informers.informer(JOBS)
        self.queue = WorkQueue("cronjob")
        self.recorder = EventRecorder(client, "cronjob-controller")
        self._created: set[str] = set()  # uids of Jobs we made (the cache may lag our status write)
        self.cj_informer.add_handler(lambda t, o, n: self.queue.add(key_of(n)))
        self.job_informer.add_handler(self._on_job)

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    def _on_job(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        ref = meta.controller_of(new)
        if ref is not None and ref.get("kind") == "CronJob":
            self.queue.add(f"{new['metadata'].get('namespace')}/{ref.get('name')}")

    def _jobs_of(self, cj: dict[str, Any]) -> list[dict[str, Any]]:
        uid = cj["metadata"]["uid"]
        return [j for j in self.job_informer.list(cj["metadata"].get("namespace"))
                if (meta.controller_of(j) or {}).get("uid") == uid]

    async def reconcile(self, key: str) -> None:
        cached = self.cj_informer.get(key)
        if cached is None:
            return
        cj = deep_copy(cached)
        status = deep_copy(cj.get("status") or {})
        jobs = self._jobs_of(cj)
        self._refresh_active(cj, status, jobs)
        await self._prune_history(cj, jobs)
        next_at = None
        if not meta.is_deleting(cj) and not (cj.get("spec") or {}).get("suspend"):
            next_at = await self._maybe_start(cj, status)
        await self._write_status(cj, status)
        if next_at is not None:
            delay = (next_at - podutil.utcnow()).total_seconds() + 0.1
            self.queue.add_after(key, max(delay, 0.1))

    def _refresh_active(self, cj: dict[str, Any], status: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        by_uid = {j["metadata"]["uid"]: j for j in jobs}
        active = []
        for ref in status.get("active") or []:
            j = by_uid.get(ref.get("uid"))
            if j is None:
                continue  # gone: drop it (upstream: "MissingJob" when it vanished unfinished)
            if ju.is_finished(j):
                cond = "Complete" if ju.is_true(j, "Complete") else "Failed"
                self.recorder.event(cj, "Normal", "SawCompletedJob",
                                    f"Saw completed job: {j['metadata']['name']}, condition: {cond}")
                continue
            active.append(ref)
        known = {r["uid"] for r in active}
        for j in jobs:
            if ju.is_finished(j) or j["metadata"]["uid"] in known:
                continue
            if j["metadata"]["uid"] in self._created:  # ours; the cache had not seen our status write
                active.append(_ref(j))
                continue
            # a Job it did not start (`kubectl create job --from=cronjob/x`): upstream reports it
            # and leaves it out of status.active, so it neither counts as ACTIVE nor blocks Forbid
            self.recorder.event(cj, "Warning", "UnexpectedJob",
                                f"Saw a job that the controller did not create or forgot: {j['metadata']['name']}")
        status["active"] = active or None
        done = [(j.get("status") or {}).get("completionTime") for j in jobs if ju.is_true(j, "Complete")]
        done = [t for t in done if t]
        if done:
            latest = max(done, key=meta.parse_time)
            prev = status.get("lastSuccessfulTime")
            if not prev or meta.parse_time(latest) > meta.parse_time(prev):
                status["lastSuccessfulTime"] = latest

    async def _prune_history(self, cj: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        spec = cj.get("spec") or {}
        for cond, field, default in (("Complete", "successfulJobsHistoryLimit", 3),
                                     ("Failed", "failedJobsHistoryLimit", 1)):
            limit = spec.get(field)
            limit = default if limit is None else int(limit)
            done = [j for j in jobs if ju.is_true(j, cond) and not meta.is_deleting(j)]
            done.sort(key=lambda j: (j.get("status") or {}).get("startTime")
                      or j["metadata"].get("creationTimestamp") or "")
            for j in done[: max(0, len(done) - limit)]:
                await self._delete_job(cj, j)

    async def _delete_job(self, cj: dict[str, Any], job: dict[str, Any]) -> None:
        try:
            await self.client.delete(JOBS, job["metadata"]["name"], job["metadata"].get("namespace"),
                                     propagation_policy="Background")
        except errors.StatusError as e:
            if e.code != 404:
                self.recorder.event(cj, "Warning", "FailedDelete", f"Deleted job: {e.message}")
                raise
            return
        self.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {job['metadata']['name']}")

    async def _maybe_start(self, cj: dict[str, Any], status: dict[str, Any]) -> _dt.datetime | None:
        """Start the due run if allowed; return when to look again."""
        spec = cj.get("spec") or {}
        try:
            sched = cs.parse(str(spec.get("schedule") or ""))
        except cs.CronError as e:
            self.recorder.event(cj, "Warning", "UnparseableSchedule",
                                f"unparseable schedule: {spec.get('schedule')!r} : {e}")
            return None
        try:
            tz = cs.zone(spec.get("timeZone"))
        except cs.CronError:
            self.recorder.event(cj, "Warning", "UnknownTimeZone",
                                f"invalid timeZone: {spec.get('timeZone')!r}")
            return None
        now = podutil.utcnow()
        last = status.get("lastScheduleTime") or cj["metadata"].get("creationTimestamp")
        earliest = meta.parse_time(last) if last else now
        sds = spec.get("startingDeadlineSeconds")
        if sds is not None:
            earliest = max(earliest, now - _dt.timedelta(seconds=int(sds)))
        try:
            scheduled, missed = cs.most_recent(sched, tz, earliest, now)
        except cs.CronError as e:  # never fires: reported once, not requeued (as upstream)
            self.recorder.event(cj, "Warning", "InvalidSchedule",
                                f"invalid schedule: {spec.get('schedule')} : {e}")
            return None
        next_at = sched.next(now, tz)
        if scheduled is None:
            return next_at
        if missed > 100:
            self.recorder.event(cj, "Warning", "TooManyMissedTimes",
                                f"too many missed start times: {missed}. Set or decrease "
                                ".spec.startingDeadlineSeconds or check clock skew")
        if sds is not None and scheduled < now - _dt.timedelta(seconds=int(sds)):
            self.recorder.event(cj, "Warning", "MissSchedule",
                                f"Missed scheduled time to start a job: {_fmt(scheduled)}")
            return next_at
        name = job_name(cj["metadata"]["name"], scheduled)
        active = status.get("active") or []
        if any(r.get("name") == name for r in active):
            return next_at
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.recorder.event(cj, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and concurrency "
                                "policy is Forbid")
            return next_at
        if policy == "Replace":
            for r in list(active):
                j = self.job_informer.get(f"{r.get('namespace')}/{r.get('name')}")
                if j is not None:
                    await self._delete_job(cj, j)
            active = []
        job = job_from_template(cj, scheduled, tz)
        try:
            created = await self.client.create(JOBS, job, cj["metadata"].get("namespace"))
            self._created.add(created["metadata"]["uid"])
            if len(self._created) > 10_000:
                self._created.pop()
            self.recorder.event(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        except errors.StatusError as e:
            if e.code != 409:
                self.recorder.event(cj, "Warning", "FailedCreate", f"Error creating job: {e.message}")
                raise
            created = await self.client.get(JOBS, name, cj["metadata"].get("namespace"))
            if (meta.controller_of(created) or {}).get("uid") != cj["metadata"]["uid"]:
                return next_at  # a stranger's Job holds the name: skip this run
        if not ju.is_finished(created):
            active = [*active, _ref(created)]
        status["active"] = active or None
        status["lastScheduleTime"] = _fmt(scheduled)
        return next_at

    async def _write_status(self, cj: dict[str, Any], status: dict[str, Any]) -> None:
        status = {k: v for k, v in status.items() if v is not None}
        if status == (cj.get("status") or {}):
            return
        body = dict(cj)
        body["status"] = status
        try:
            await self.client.update(CRONJOBS, body, subresource="status")
        except errors.StatusError as e:
            if e.code != 404:
                raise
