"""managedFields written on updates are in upstream's serialisation order even
where record_update reuses the stored (already ordered) parts of a manager's
set instead of sorting it again: a sequence of status and main-resource writes
through stored bytes, each compared with the same write sorted from scratch."""

from __future__ import annotations

import random

import orjson

from kybern.api import schemas
from kybern.machinery import fieldpath as fp
from kybern.machinery import managedfields as mf

POD = schemas.definition("io.k8s.api.core.v1.Pod")
TYPES = ["PodScheduled", "Initialized", "Ready", "ContainersReady", "PodReadyToStartContainers"]


def _status(rng: random.Random) -> dict:
    conds = [{"type": t, "status": rng.choice(["True", "False"]), "lastTransitionTime": f"2026-01-0{rng.randint(1, 9)}"}
             for t in rng.sample(TYPES, rng.randint(0, len(TYPES)))]
    st: dict = {"phase": rng.choice(["Pending", "Running", "Succeeded"])}
    if conds:
        st["conditions"] = conds
    if rng.random() < 0.7:
        st["containerStatuses"] = [
            {"name": n, "ready": rng.random() < 0.5, "restartCount": rng.randint(0, 3),
             "state": rng.choice([{"running": {"startedAt": "t"}}, {"waiting": {"reason": "r"}},
                                  {"terminated": {"exitCode": 1, "reason": "Error"}}]),
             **({"lastState": {"terminated": {"exitCode": 0}}} if rng.random() < 0.3 else {})}
            for n in rng.sample(["a", "b", "c"], rng.randint(1, 3))]
    if rng.random() < 0.5:
        st["podIP"] = "10.0.0.%d" % rng.randint(1, 9)
        st["podIPs"] = [{"ip": st["podIP"]}]
    return st


def _pod(rng: random.Random) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default",
                         "labels": {k: "v" for k in rng.sample(["a", "b", "c", "d"], rng.randint(0, 3))}},
            "spec": {"containers": [{"name": n, "image": rng.choice(["x", "y"])} for n in ("a", "b", "c")],
                     **({"nodeName": "n1"} if rng.random() < 0.5 else {})}}


def _write(new: dict, old: dict | None, manager: str, sub: str) -> dict:
    mf.record_update(new, old, manager=manager, api_version="v1", schema=POD, has_status=True, subresource=sub)
    return orjson.loads(orjson.dumps(new))  # through storage: the next write decodes these bytes


def test_updates_keep_managed_fields_in_serialisation_order(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    monkeypatch.setattr(mf.meta, "now", lambda: "2026-11-22T20:00:00Z")
    sort_all = fp.canonical
    checked = 0
    for _ in range(150):
        obj = _write(_pod(rng), None, "creator", "")
        for _ in range(8):
            sub = rng.choice(["status", "status", ""])
            manager = rng.choice(["kubelet", "kubelet", "controller", "creator"])
            new = orjson.loads(orjson.dumps(obj))
            if sub == "status":
                new["status"] = _status(rng)
            else:
                fresh = _pod(rng)
                new["metadata"]["labels"] = fresh["metadata"]["labels"]
                new["spec"] = fresh["spec"]
            # the same write with every set sorted from scratch (no stored order reused)
            want = orjson.loads(orjson.dumps(new))
            monkeypatch.setattr(fp, "canonical", lambda s, ref=None: sort_all(s))
            _write(want, orjson.loads(orjson.dumps(obj)), manager, sub)
            monkeypatch.setattr(fp, "canonical", sort_all)
            got = _write(new, orjson.loads(orjson.dumps(obj)), manager, sub)
            assert orjson.dumps(got["metadata"].get("managedFields")) == \
                orjson.dumps(want["metadata"].get("managedFields"))
            for e in got["metadata"].get("managedFields") or []:
                assert orjson.dumps(e["fieldsV1"]) == orjson.dumps(sort_all(e["fieldsV1"]))
            obj = got
            checked += 1
    assert checked == 1200
