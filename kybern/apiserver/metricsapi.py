"""The resource metrics API, metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics,
what metrics-server serves and `kubectl top` and the HPA controller read.

Nothing is stored. Each request asks the node agents concerned for their
`/stats/summary` (as metrics-server scrapes the kubelets), through the same
node endpoint, session and token as the log proxy, and answers from the
usage they computed over their last sampling window. A node that does not
answer, a container without a rate yet (seen in one sample only) leave the
node or pod out, as metrics-server does.

    GET /apis/metrics.k8s.io/v1beta1/nodes[/<name>]                  ?labelSelector&fieldSelector
    GET /apis/metrics.k8s.io/v1beta1/[namespaces/<ns>/]pods[/<name>] ?labelSelector&fieldSelector

Quantities are written as metrics-server writes them: CPU in nanocores
canonicalised ("250m", "1234567n"), memory in bytes with the largest exact
binary suffix ("1234Ki").
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Strategy
from kybern.apiserver import rest
from kybern.apiserver.store import Predicate
from kybern.machinery import errors, meta

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

log = logging.getLogger(__name__)

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
READ_ONLY = ("get", "list")
SCRAPE_TIMEOUT = 5.0
CACHE_TTL = 1.0  # one scrape serves a burst of requests (kubectl top + the HPA)

RESOURCES = [
    ResourceInfo(GROUP, VERSION, "NodeMetrics", "nodes", False, "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics",
                 verbs=READ_ONLY, strategy=Strategy()),
    ResourceInfo(GROUP, VERSION, "PodMetrics", "pods", True, "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics",
                 verbs=READ_ONLY, strategy=Strategy()),
]


# -- quantities -------------------------------------------------------------------
def cpu_quantity(nanocores: int) -> str:
    """Canonical form of a nanocore count (resource.NewScaledQuantity(n, Nano))."""
    n = max(0, int(nanocores))
    if n == 0:
        return "0"
    for suffix, div in (("", 10 ** 9), ("m", 10 ** 6), ("u", 10 ** 3)):
        if n % div == 0:
            return f"{n // div}{suffix}"
    return f"{n}n"


def memory_quantity(n: int) -> str:
    """Canonical form of a byte count (resource.NewQuantity(n, BinarySI))."""
    n = max(0, int(n))
    if n == 0:
        return "0"
    for suffix, div in (("Ei", 2 ** 60), ("Pi", 2 ** 50), ("Ti", 2 ** 40), ("Gi", 2 ** 30), ("Mi", 2 ** 20),
                        ("Ki", 2 ** 10)):
        if n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def go_duration(seconds: float) -> str:
    """time.Duration.String() for the durations we produce (window)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:.6f}".rstrip("0").rstrip(".") + "ms"
    whole = f"{seconds:.9f}".rstrip("0").rstrip(".")
    if seconds < 60:
        return whole + "s"
    m, s = divmod(seconds, 60)
    sec = f"{s:.9f}".rstrip("0").rstrip(".")
    return f"{int(m)}m{sec}s"


# -- scraping ---------------------------------------------------------------------
class MetricsAPI:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    async def summary(self, node: str) -> dict[str, Any] | None:
        hit = self._cache.get(node)
        if hit is not None and time.monotonic() - hit[0] < CACHE_TTL:
            return hit[1]
        try:
            url = await self.server.node_url(node) + "/stats/summary"
            async with self.server.node_session().get(
                    url, headers=self.server.node_headers(),
                    timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)) as resp:
                body = await resp.json() if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, errors.StatusError, ValueError) as e:
            log.debug("metrics: node %s did not answer: %r", node, e)
            body = None
        self._cache[node] = (time.monotonic(), body)
        return body

    async def summaries(self, nodes: set[str]) -> dict[str, dict[str, Any]]:
        names = sorted(nodes)
        got = await asyncio.gather(*(self.summary(n) for n in names))
        return {n: s for n, s in zip(names, got) if s}

    # -- objects ----------------------------------------------------------------
    async def node_metrics(self, pred: Predicate) -> list[dict[str, Any]]:
        nodes = [n for n in (await self.server.store("", "v1", "nodes").list(None, pred=Predicate()))["items"]
                 if pred.matches(n)]
        sums = await self.summaries({n["metadata"]["name"] for n in nodes})
        out = []
        for n in nodes:
            s = sums.get(n["metadata"]["name"])
            node = (s or {}).get("node") or {}
            cpu, mem = node.get("cpu") or {}, node.get("memory") or {}
            if cpu.get("usageNanoCores") is None or mem.get("workingSetBytes") is None:
                continue
            out.append({"kind": "NodeMetrics", "apiVersion": API_VERSION,
                        "metadata": _meta(n, namespaced=False),
                        "timestamp": cpu.get("time"), "window": go_duration(s.get("windowSeconds") or 0),  # type: ignore[union-attr]
                        "usage": {"cpu": cpu_quantity(cpu["usageNanoCores"]),
                                  "memory": memory_quantity(mem["workingSetBytes"])}})
        return out

    async def pod_metrics(self, ns: str | None, pred: Predicate) -> list[dict[str, Any]]:
        pods = [p for p in (await self.server.store("", "v1", "pods").list(ns, pred=Predicate()))["items"]
                if pred.matches(p) and (p.get("spec") or {}).get("nodeName")]
        sums = await self.summaries({p["spec"]["nodeName"] for p in pods})
        by_uid: dict[str, tuple[dict[str, Any], float]] = {}
        for s in sums.values():
            for ps in s.get("pods") or []:
                by_uid[(ps.get("podRef") or {}).get("uid", "")] = (ps, s.get("windowSeconds") or 0)
        out = []
        for p in pods:
            found = by_uid.get(p["metadata"].get("uid", ""))
            if found is None:
                continue
            ps, window = found
            containers = []
            for c in ps.get("containers") or []:
                cpu, mem = c.get("cpu") or {}, c.get("memory") or {}
                if cpu.get("usageNanoCores") is None:
                    containers = []
                    break  # one container without a rate yet: the pod has no complete sample
                containers.append({"name": c["name"], "usage": {
                    "cpu": cpu_quantity(cpu["usageNanoCores"]),
                    "memory": memory_quantity(mem.get("workingSetBytes") or 0)}})
            if not containers:
                continue
            out.append({"kind": "PodMetrics", "apiVersion": API_VERSION, "metadata": _meta(p, namespaced=True),
                        "timestamp": (ps.get("cpu") or {}).get("time"), "window": go_duration(window),
                        "containers": containers})
        return out

    # -- HTTP ---------------------------------------------------------------------
    async def handle(self, request: web.Request, version: str, segs: list[str]) -> web.StreamResponse:
        if version != VERSION:
            raise web.HTTPNotFound()
        ns = name = None
        if len(segs) >= 3 and segs[0] == "namespaces":
            ns, segs = segs[1], segs[2:]
        if not segs or segs[0] not in ("nodes", "pods") or len(segs) > 2 or (ns and segs[0] == "nodes"):
            raise web.HTTPNotFound()
        plural = segs[0]
        name = segs[1] if len(segs) == 2 else None
        if request.method != "GET" or rest.query_bool(request, "watch"):
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        q = request.query
        pred = Predicate(q.get("labelSelector"), q.get("fieldSelector"))
        if name is not None:
            pred = Predicate(q.get("labelSelector"), f"metadata.name={name}")
        items = await (self.node_metrics(pred) if plural == "nodes" else self.pod_metrics(ns, pred))
        kind = "NodeMetrics" if plural == "nodes" else "PodMetrics"
        if name is not None:
            if not items:
                raise errors.not_found(GROUP, kind.lower(), name)
            return self._respond(request, kind, items, single=True)
        return self._respond(request, kind, items, single=False)

    def _respond(self, request: web.Request, kind: str, items: list[dict[str, Any]], *,
                 single: bool) -> web.Response:
        if rest.wants_table(request):
            return rest.json_response(_table(items, request.query.get("includeObject", "Metadata")))
        if single:
            return rest.json_response(items[0])
        return rest.json_response({"kind": kind + "List", "apiVersion": API_VERSION,
                                   "metadata": {}, "items": items})


def _meta(obj: dict[str, Any], *, namespaced: bool) -> dict[str, Any]:
    m = obj["metadata"]
    out: dict[str, Any] = {"name": m["name"]}
    if namespaced:
        out["namespace"] = m.get("namespace")
    out["creationTimestamp"] = meta.now()
    if m.get("labels"):
        out["labels"] = dict(m["labels"])
    return out


def _table(items: list[dict[str, Any]], include_object: str) -> dict[str, Any]:
    """metrics-server's columns: Name, CPU, Memory, Window."""
    cols = [{"name": n, "type": "string", "format": f, "description": d, "priority": 0} for n, f, d in (
        ("Name", "name", "Name of the resource"), ("CPU", "", "CPU consumption"),
        ("Memory", "", "Memory consumption"), ("Window", "", "Time window of the measurement"))]
    rows = []
    for o in items:
        if "usage" in o:
            cpu, mem = o["usage"]["cpu"], o["usage"]["memory"]
        else:
            cpu = cpu_quantity(sum(_nanocores(c["usage"]["cpu"]) for c in o["containers"]))
            mem = memory_quantity(sum(_bytes(c["usage"]["memory"]) for c in o["containers"]))
        row: dict[str, Any] = {"cells": [o["metadata"]["name"], cpu, mem, o["window"]]}
        if include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols,
            "rows": rows}


def _nanocores(q: str) -> int:
    for suffix, mul in (("n", 1), ("u", 10 ** 3), ("m", 10 ** 6)):
        if q.endswith(suffix):
            return int(q[:-1]) * mul
    return int(q) * 10 ** 9


def _bytes(q: str) -> int:
    for suffix, mul in (("Ki", 2 ** 10), ("Mi", 2 ** 20), ("Gi", 2 ** 30), ("Ti", 2 ** 40), ("Pi", 2 ** 50),
                        ("Ei", 2 ** 60)):
        if q.endswith(suffix):
            return int(q[:-2]) * mul
    return int(q)
