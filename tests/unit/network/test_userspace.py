"""The userspace proxy forwards real TCP connections on loopback (no root)."""

from __future__ import annotations

import asyncio

import pytest

from kybern.network.proxy_rules import ServicePort
from kybern.network.userspace import UserspaceProxy, loopback_for


def test_loopback_for():
    assert loopback_for("10.96.0.10") == "127.96.0.10"


@pytest.mark.asyncio
async def test_forwards_to_every_endpoint_and_follows_changes():
    async def backend(tag: bytes):
        async def h(r, w):
            await r.read(1)
            w.write(tag)
            await w.drain()
            w.close()
        srv = await asyncio.start_server(h, "127.0.0.1", 0)
        return srv, srv.sockets[0].getsockname()[1]

    (s1, p1), (s2, p2) = await backend(b"one"), await backend(b"two")
    proxy = UserspaceProxy()
    sp = ServicePort(key="d/web:", protocol="tcp", port=18000 + p1 % 1000, cluster_ips=["10.97.1.2"],
                     endpoints=[("127.0.0.1", p1), ("127.0.0.1", p2)])

    async def ask() -> bytes:
        r, w = await asyncio.open_connection("127.97.1.2", sp.port)
        w.write(b"x")
        data = await r.read()
        w.close()
        return data
    try:
        await proxy.sync([sp])
        seen = {await ask() for _ in range(40)}
        assert seen == {b"one", b"two"}
        sp2 = ServicePort(**{**sp.__dict__, "endpoints": [("127.0.0.1", p2)], "affinity": 60})
        await proxy.sync([sp2])
        assert {await ask() for _ in range(5)} == {b"two"}
        await proxy.sync([])
        with pytest.raises(OSError):
            await ask()
    finally:
        await proxy.stop()
        s1.close()
        s2.close()
