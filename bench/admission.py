"""Cost of pod-create admission in the apiserver, printed, never asserted: the
ServiceAccount lookup, LimitRanger, Priority and ResourceQuota plugins
(kybern/apiserver/server.py `_create_admission`) on an in-process APIServer over
SQLite in a temp dir, with no LimitRange, PriorityClass default or quota in the
namespace (the common case) and with one of each. The pods themselves are not
written; a quota's charge is (one status write per quota per create).

Run: python bench/admission.py [--n 5000] [--pods 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import tempfile
import time

from kybern.apiserver.server import APIServer
from kybern.storage.sqlite import SQLiteStore

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
       "spec": {"containers": [{"name": "c", "image": "demo:v1",
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                              "limits": {"cpu": "200m", "memory": "128Mi"}}}]}}


async def per_pod(api: APIServer, n: int) -> float:
    admit = api._create_admission(api.store("", "v1", "pods").info)
    assert admit is not None
    pods = [copy.deepcopy(POD) for _ in range(n + 200)]
    for p in pods[:200]:
        await admit(p)
    t = time.perf_counter()
    for p in pods[200:]:
        await admit(p)
    return (time.perf_counter() - t) / n * 1e6


async def main(n: int, stored: int) -> None:
    api = APIServer(SQLiteStore(f"{tempfile.mkdtemp()}/state.db"))
    await api.bootstrap()
    print(f"pod create admission, nothing to apply: {await per_pod(api, n):.1f} us per pod")
    await api.store("", "v1", "limitranges").create("default", {"metadata": {"name": "lr"}, "spec": {"limits": [
        {"type": "Container", "max": {"memory": "1Gi"}, "defaultRequest": {"cpu": "50m"}}]}})
    await api.store("", "v1", "resourcequotas").create("default", {"metadata": {"name": "q"},
                                                                   "spec": {"hard": {"pods": "100000"}}})
    await api.store("scheduling.k8s.io", "v1", "priorityclasses").create(None, {
        "metadata": {"name": "low"}, "value": 10, "globalDefault": True})
    print(f"pod create admission, a LimitRange, a pods quota and a default class: {await per_pod(api, n):.1f} us "
          "per pod (no pods stored; the quota's status.used written once per create, as upstream)")
    pods = api.store("", "v1", "pods")
    for i in range(stored):
        await pods.create("default", {**copy.deepcopy(POD), "metadata": {"name": f"s{i}"}})
    await asyncio.sleep(0.5)  # the watch cache catches up
    print(f"  the same with {stored} pods stored in the namespace: {await per_pod(api, n // 10):.1f} us per pod "
          "(usage read from the quota's status, not recounted)")
    await api.store("", "v1", "resourcequotas").create("default", {"metadata": {"name": "compute"}, "spec": {
        "hard": {"requests.cpu": "100000", "limits.memory": "1000Ti"}}})
    print(f"  and a cpu/memory quota too: {await per_pod(api, n // 10):.1f} us per pod (two quota writes)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=1000, help="pods stored in the namespace for the quota figures")
    args = ap.parse_args()
    asyncio.run(main(args.n, args.pods))
