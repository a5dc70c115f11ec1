"""A shared informer factory (kybern/client/informer_factory.py), as `kybern up`
gives its controllers and scheduler: one list+watch feeds every component's
handlers; a component that starts late gets the current objects replayed; a
component that stops takes only its own handlers away; the informers go on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import CONFIGMAPS, SECRETS

pytestmark = pytest.mark.e2e


async def _until(pred: Any, timeout: float = 10.0) -> None:
    t0 = asyncio.get_running_loop().time()
    while not pred():
        if asyncio.get_running_loop().time() - t0 > timeout:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


def _recorder(seen: list[str]) -> Any:
    """A handler noting "TYPE name", but for the kube-root-ca.crt ConfigMap every
    namespace has (the root CA publisher's, as upstream)."""
    def handle(t: str, o: Any, n: dict[str, Any]) -> None:
        if n["metadata"]["name"] != "kube-root-ca.crt":
            seen.append(f"{t} {n['metadata']['name']}")
    return handle


async def test_components_share_one_watch_and_leave_alone(cluster: Any, namespace: str) -> None:
    client = cluster.client()
    try:
        factory = InformerFactory(client, namespace=namespace)
        seen_a: list[str] = []
        seen_b: list[str] = []

        # component A registers before the start, as the controllers do
        with factory.recording() as regs_a:
            factory.informer(CONFIGMAPS).add_handler(_recorder(seen_a))
        factory.start()
        await factory.wait_synced()
        await client.create(CONFIGMAPS, {"metadata": {"name": "one"}, "data": {"k": "v"}}, namespace)
        await _until(lambda: "ADDED one" in seen_a)

        # component B comes later (a restarted scheduler): the current objects are replayed to it
        with factory.recording() as regs_b:
            factory.informer(CONFIGMAPS).add_handler(_recorder(seen_b))
        assert seen_b == ["ADDED one"]
        assert len(regs_a) == len(regs_b) == 1 and regs_a != regs_b

        # one informer, one watch, both handlers
        await client.create(CONFIGMAPS, {"metadata": {"name": "two"}}, namespace)
        await _until(lambda: "ADDED two" in seen_a and "ADDED two" in seen_b)
        assert len(factory._informers) == 1

        # A stops: B still gets events, A no longer
        await factory.release(regs_a, shared=True)
        await client.create(CONFIGMAPS, {"metadata": {"name": "three"}}, namespace)
        await _until(lambda: "ADDED three" in seen_b)
        await asyncio.sleep(0.2)
        assert "ADDED three" not in seen_a

        # an informer asked for after the start is started too
        secrets_seen: list[str] = []
        factory.informer(SECRETS).add_handler(lambda t, o, n: secrets_seen.append(n["metadata"]["name"]))
        await client.create(SECRETS, {"metadata": {"name": "s1"}, "stringData": {"a": "b"}}, namespace)
        await _until(lambda: "s1" in secrets_seen)
        await factory.stop()
    finally:
        await client.close()
