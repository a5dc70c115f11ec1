"""A pod worker's own status write coming back through the watch must not wake it
for another sync, even when the watch delivers it before the PATCH's answer (a
burst of pod starts synced every pod twice that way: docs/benchmarks.md, issue 4);
anything else that changes the pod still wakes it."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace
from typing import Any

from kybern.node.pod_worker import PodWorker

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "p", "namespace": "default", "uid": "u1", "resourceVersion": "1"},
       "spec": {"containers": [{"name": "c", "image": "demo:v1"}]},
       "status": {"phase": "Pending"}}


class _Client:
    """Applies a status PATCH and delivers the watch event before answering, as the
    apiserver's watch fan-out may (the event can overtake the response)."""

    def __init__(self) -> None:
        self.worker: PodWorker | None = None
        self.rv = 1

    async def patch(self, _res: Any, _name: str, body: dict[str, Any], _ns: str, *, subresource: str = "") -> Any:
        assert self.worker is not None and self.worker.pod is not None
        self.rv += 1
        pod = copy.deepcopy(self.worker.pod)
        pod["metadata"]["resourceVersion"] = str(self.rv)
        pod["status"] = {k: v for k, v in body["status"].items() if v is not None}
        self.worker.update(pod)  # the watch event first
        await asyncio.sleep(0)
        return pod


def _worker() -> tuple[PodWorker, _Client]:
    client = _Client()
    agent = SimpleNamespace(client=client, address="10.0.0.1", backoff_base=10.0, backoff_max=300.0)
    w = PodWorker(agent, copy.deepcopy(POD))  # type: ignore[arg-type]
    client.worker = w
    return w, client


async def test_an_echo_arriving_before_the_answer_does_not_wake_the_worker() -> None:
    w, _ = _worker()
    w._wake.clear()
    await w._write_status({"phase": "Running", "podIP": "10.244.0.2",
                           "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t1"}]})
    assert not w._wake.is_set()
    assert w.pod is not None and w.pod["status"]["phase"] == "Running"  # the worker keeps the newest pod


async def test_someone_elses_change_still_wakes_it() -> None:
    w, client = _worker()
    await w._write_status({"phase": "Running"})
    w._wake.clear()
    other = copy.deepcopy(w.pod)
    assert other is not None
    other["metadata"]["labels"] = {"tier": "web"}  # kubectl label
    other["metadata"]["resourceVersion"] = "99"
    w.update(other)
    assert w._wake.is_set()
    w._wake.clear()
    changed = copy.deepcopy(other)
    changed["status"] = {"phase": "Running", "message": "set by someone else"}
    w.update(changed)
    assert w._wake.is_set()
