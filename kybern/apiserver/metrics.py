"""The apiserver's Prometheus metrics at /metrics, under upstream's names and
labels (k8s.io/apiserver/pkg/endpoints/metrics and pkg/storage/etcd3/metrics),
so kube-apiserver dashboards and alerts work unchanged.

- apiserver_request_total{verb,dry_run,group,version,resource,subresource,scope,component,code}
- apiserver_request_duration_seconds (histogram; same labels less code)
- apiserver_longrunning_requests (watches and log streams in flight; no dry_run)
- apiserver_registered_watchers{group,version,kind}
- apiserver_watch_events_total{group,version,kind}
- apiserver_storage_objects{resource} (read from the watch cache at scrape time)
- etcd_request_duration_seconds{operation,type} (storage latency; upstream keeps
  the etcd name whatever the backend)

Verbs are upstream's: LIST/GET/WATCH for reads, APPLY for server-side apply
patches, DELETECOLLECTION, CONNECT for streaming subresources.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from kybern.api.registry import Registry, ResourceInfo
from kybern.storage import interface as st

# upstream's buckets for both request and storage latency
BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30,
           45, 60)
REQUEST_LABELS = ("verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component")
LONGRUNNING_LABELS = ("verb", "group", "version", "resource", "subresource", "scope", "component")
NON_RESOURCE = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/metrics", "/openapi/v2",
                "/openapi/v3")
LONG_RUNNING_SUBRESOURCES = ("log", "exec", "attach", "portforward", "proxy")
CONNECT_SUBRESOURCES = ("exec", "attach", "portforward", "proxy")
COMPONENT = "apiserver"

disable_created_metrics()  # upstream exposes no *_created series


def resource_label(prefix: str) -> str:
    """`/registry/core/pods/` → `pods`; `/registry/apps/deployments/` → `deployments.apps`."""
    parts = prefix.strip("/").split("/")
    if len(parts) < 3:
        return prefix
    group, plural = parts[1], parts[2]
    return plural if group == "core" else f"{plural}.{group}"


def _dry_run(request: web.Request) -> str:
    """upstream's cleanDryRun: the request's dryRun values deduplicated and sorted, or
    "invalid" when one is not "All"; "" without any."""
    if "dryRun" not in request.query_string:
        return ""
    vals = request.query.getall("dryRun", [])
    if any(v != "All" for v in vals):
        return "invalid"
    return ",".join(sorted(set(vals)))


class APIMetrics:
    """One apiserver's metrics, in a registry of its own (several servers may share a process)."""

    def __init__(self, registry: Registry, object_counts: Callable[[], dict[str, int]]) -> None:
        self.api_registry = registry
        self.prom = CollectorRegistry(auto_describe=True)
        # counted on every request: plain numbers, exported when scraped (see _Counts)
        self.requests = _Counts("apiserver_request_total",
                                "Counter of apiserver requests broken out for each verb, dry run value, "
                                "group, version, resource, scope, component, and HTTP response code.",
                                (*REQUEST_LABELS, "code"))
        self.prom.register(self.requests)
        self.latency = _Histograms("apiserver_request_duration_seconds",
                                   "Response latency distribution in seconds for each verb, dry run value, "
                                   "group, version, resource, subresource, scope and component.",
                                   REQUEST_LABELS, BUCKETS)
        self.prom.register(self.latency)
        self.longrunning = Gauge("apiserver_longrunning_requests",
                                 "Gauge of all active long-running apiserver requests broken out by verb, "
                                 "group, version, resource, scope and component.",
                                 LONGRUNNING_LABELS, registry=self.prom)
        self.watchers = Gauge("apiserver_registered_watchers",
                              "Number of currently registered watchers for a given resources",
                              ("group", "version", "kind"), registry=self.prom)
        # counted in plain ints (bumped per watcher per batch) and exported when scraped,
        # with what the open watches' sinks sent since their handler last counted
        self.watch_event_counts: dict[tuple[str, str, str], int] = {}
        self.live_watches: set[LiveWatch] = set()
        self.prom.register(_WatchEvents(self.watch_event_counts, self.live_watches))
        self.storage_latency = _Histograms("etcd_request_duration_seconds",
                                           "Etcd request latency in seconds for each operation and object type.",
                                           ("operation", "type"), BUCKETS)
        self.prom.register(self.storage_latency)
        self.prom.register(_ObjectCounts(object_counts))

    # -- request classification ---------------------------------------------------
    def classify(self, request: web.Request) -> tuple[tuple[str, ...], bool]:
        """(labels without code, long-running?) as upstream's RequestInfo resolver would give."""
        path, method = request.path, request.method
        parts = [p for p in path.split("/") if p]
        group = version = None
        rest: list[str] = []
        if len(parts) >= 3 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        info: ResourceInfo | None = None
        ns = name = sub = None
        if group is not None and version is not None and rest:
            reg = self.api_registry
            if len(rest) >= 3 and rest[0] == "namespaces":
                cand = reg.get(group, version, rest[2])
                if cand is not None and cand.namespaced:
                    info, ns, tail = cand, rest[1], rest[3:]
                else:
                    info, tail = reg.get(group, version, "namespaces"), rest[1:]
            else:
                info, tail = reg.get(group, version, rest[0]), rest[1:]
            if info is not None and len(tail) <= 2:
                name = tail[0] if tail else None
                sub = tail[1] if len(tail) == 2 else None
            else:
                info = None
        if info is None:  # non-resource request: upstream puts the path in `subresource`
            known = next((p for p in NON_RESOURCE if path == p or path.startswith(p + "/")), "other")
            verb = method if method != "HEAD" else "GET"
            return (verb, _dry_run(request), "", "", "", known, "", COMPONENT), False
        if sub in CONNECT_SUBRESOURCES:
            verb = "CONNECT"
        elif method == "GET":
            watch = request.query_string and request.query.get("watch", "").lower() in ("true", "1")
            verb = "WATCH" if watch else ("GET" if name else "LIST")
        elif method == "PATCH":
            ctype = request.headers.get("Content-Type", "")
            verb = "APPLY" if ctype.startswith("application/apply-patch") else "PATCH"
        elif method == "DELETE" and name is None:
            verb = "DELETECOLLECTION"
        else:
            verb = method
        scope = "resource" if name else "namespace" if ns else "cluster"
        long_running = verb in ("WATCH", "CONNECT") or sub in LONG_RUNNING_SUBRESOURCES
        return (verb, _dry_run(request), info.group, info.version, info.plural, sub or "", scope,
                COMPONENT), long_running

    def begin(self, request: web.Request) -> tuple[tuple[str, ...], Any, float]:
        """A request starts: (its labels, its long-running gauge or None, start time)."""
        labels, long_running = self.classify(request)
        gauge = self.longrunning.labels(labels[0], *labels[2:]) if long_running else None
        if gauge is not None:
            gauge.inc()
        return labels, gauge, time.perf_counter()

    def end(self, labels: tuple[str, ...], gauge: Any, start: float, code: int) -> None:
        """A request is answered with `code` (or failed: 500)."""
        if gauge is not None:
            gauge.dec()
        counts = self.requests.values
        key = (*labels, str(code))
        counts[key] = counts.get(key, 0.0) + 1.0
        self.latency.observe(labels, time.perf_counter() - start)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """The request metrics alone as a middleware (the apiserver does the same
        inside its one middleware, server.APIServer._middleware)."""
        labels, gauge, start = self.begin(request)
        code = 500
        try:
            resp = await handler(request)
            code = resp.status
            return resp
        except web.HTTPException as e:
            code = e.status
            raise
        finally:
            self.end(labels, gauge, start, code)

    # -- watch --------------------------------------------------------------------
    def watcher_delta(self, info: ResourceInfo, delta: int) -> None:
        self.watchers.labels(info.group, info.version, info.kind).inc(delta)

    def watch_events_sent(self, info: ResourceInfo, n: int) -> None:
        key = (info.group, info.version, info.kind)
        self.watch_event_counts[key] = self.watch_event_counts.get(key, 0) + n

    def watch_started(self, info: ResourceInfo, watcher: Any) -> LiveWatch:
        live = LiveWatch((info.group, info.version, info.kind), watcher)
        self.live_watches.add(live)
        return live

    def watch_counted(self, live: LiveWatch) -> None:
        """Count what the watcher's sink sent since the last call (the cache writes
        caught-up watchers' events straight to their connections)."""
        n = live.watcher.sent - live.counted
        if n:
            live.counted += n
            self.watch_event_counts[live.key] = self.watch_event_counts.get(live.key, 0) + n

    def watch_ended(self, live: LiveWatch) -> None:
        self.watch_counted(live)
        self.live_watches.discard(live)

    # -- exposition ---------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.prom), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _Counts:
    """A counter family in a plain dict, label values -> count. prometheus_client's
    Counter takes a lock and checks its argument on every inc(), a visible share
    of a GET at thousands a second; the apiserver updates its request metrics
    from the event loop's one thread, so plain numbers do, exported when scraped."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self.values: dict[tuple[str, ...], float] = {}

    def collect(self) -> Iterable[CounterMetricFamily]:
        c = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for key, n in list(self.values.items()):
            c.add_metric(key, n)
        yield c

    def describe(self) -> list[CounterMetricFamily]:
        return []


class _Histograms:
    """A histogram family kept as plain numbers (see _Counts): per label values,
    the count in each bucket (not cumulative) and the sum."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self.bounds = [float(b) for b in buckets]
        self.le = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self.series: dict[tuple[str, ...], list[float]] = {}  # [bucket counts..., +Inf count, sum]

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        s[bisect_left(self.bounds, value)] += 1.0  # the first bucket whose bound is >= value
        s[-1] += value

    def collect(self) -> Iterable[HistogramMetricFamily]:
        h = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, s in list(self.series.items()):
            total, buckets = 0.0, []
            for le, n in zip(self.le, s):
                total += n
                buckets.append((le, total))
            h.add_metric(labels, buckets, s[-1])
        yield h

    def describe(self) -> list[HistogramMetricFamily]:
        return []


class LiveWatch:
    """An open watch: its watcher's `sent` count, and how much of it is counted."""

    __slots__ = ("counted", "key", "watcher")

    def __init__(self, key: tuple[str, str, str], watcher: Any) -> None:
        self.key, self.watcher, self.counted = key, watcher, 0


class _WatchEvents:
    """apiserver_watch_events_total from plain counters, plus what open watches
    sent since their handler last counted."""

    def __init__(self, counts: dict[tuple[str, str, str], int], live: set[LiveWatch]) -> None:
        self.counts = counts
        self.live = live

    def collect(self) -> Iterable[CounterMetricFamily]:
        c = CounterMetricFamily("apiserver_watch_events", "Number of events sent in watch clients",
                                labels=["group", "version", "kind"])
        totals = dict(self.counts)
        for w in list(self.live):
            pending = w.watcher.sent - w.counted
            if pending:
                totals[w.key] = totals.get(w.key, 0) + pending
        for key, n in sorted(totals.items()):
            c.add_metric(list(key), n)
        yield c

    def describe(self) -> list[CounterMetricFamily]:
        return []


class _ObjectCounts:
    """apiserver_storage_objects, computed when scraped."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        g = GaugeMetricFamily("apiserver_storage_objects",
                              "Number of stored objects at the time of last check split by kind.",
                              labels=["resource"])
        for prefix, n in sorted(self.counts().items()):
            g.add_metric([resource_label(prefix)], n)
        yield g

    def describe(self) -> list[GaugeMetricFamily]:
        return []


class InstrumentedStore:
    """A Store that times every call into etcd_request_duration_seconds."""

    def __init__(self, inner: st.Store, histogram: _Histograms) -> None:
        self.inner = inner
        self._h = histogram
        self._labels: dict[tuple[str, str], tuple[str, str]] = {}  # (op, key prefix) -> labels

    def _obs(self, op: str, key: str, start: float) -> None:
        elapsed = time.perf_counter() - start
        end = key.find("/", key.find("/", key.find("/", 1) + 1) + 1)  # the 4th "/": /registry/<g>/<r>/
        prefix = key[:end + 1] if end > 0 else key
        labels = self._labels.get((op, prefix))
        if labels is None:
            parts = key.split("/", 4)
            typ = resource_label("/".join(parts[:4]) + "/") if len(parts) >= 4 else key
            labels = self._labels[(op, prefix)] = (op, typ)
        self._h.observe(labels, elapsed)

    async def get(self, key: str) -> tuple[st.KV | None, int]:
        t = time.perf_counter()
        try:
            return await self.inner.get(key)
        finally:
            self._obs("get", key, t)

    async def mod_revision(self, key: str) -> int:
        t = time.perf_counter()
        try:
            return await self.inner.mod_revision(key)
        finally:
            self._obs("get", key, t)

    async def list(self, prefix: str, *, revision: int = 0, start: str = "", limit: int = 0) -> st.ListResult:
        t = time.perf_counter()
        try:
            return await self.inner.list(prefix, revision=revision, start=start, limit=limit)
        finally:
            self._obs("list", prefix, t)

    async def count(self, prefix: str) -> int:
        t = time.perf_counter()
        try:
            return await self.inner.count(prefix)
        finally:
            self._obs("count", prefix, t)

    async def create(self, key: str, value: bytes) -> int:
        t = time.perf_counter()
        try:
            return await self.inner.create(key, value)
        finally:
            self._obs("create", key, t)

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        t = time.perf_counter()
        try:
            return await self.inner.update(key, value, expected_revision)
        finally:
            self._obs("update", key, t)

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, st.KV]:
        t = time.perf_counter()
        try:
            return await self.inner.delete(key, expected_revision)
        finally:
            self._obs("delete", key, t)

    def watch(self, prefix: str, revision: int) -> AsyncIterator[st.Event]:
        return self.inner.watch(prefix, revision)

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:  # backend extras (e.g. path) pass through
        return getattr(self.inner, name)
