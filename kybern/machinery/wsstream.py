"""WebSocket channel streams (k8s.io/apimachinery httpstream/wsstream): how
exec/attach and the Python client's port-forward multiplex over one WebSocket.

remotecommand (`v5.channel.k8s.io`, `v4.channel.k8s.io`, `channel.k8s.io`):
every binary message is one channel byte followed by data — 0 stdin, 1 stdout,
2 stderr, 3 error (a v1 Status in JSON for v4/v5, plain text before), 4 resize
(JSON {"Width":..,"Height":..}). v5 adds channel 255: a message [255, N] means
the client will send nothing more on channel N (stdin EOF; v4 cannot say so).

port-forward (`v4.channel.k8s.io` or no subprotocol): channels 2k and 2k+1 are
the data and error channels of the k-th port of `?ports=`; the server's first
message on each is the port as two bytes, little-endian.

`SPDY/3.1+portforward.k8s.io` (kubectl >= 1.31 port-forward) carries a SPDY
byte stream in binary messages without any channel byte; `WSByteConn` makes
such a WebSocket look like a byte connection for the SPDY session.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V1 = "channel.k8s.io"
REMOTECOMMAND_PROTOCOLS = (V5, V4, V1)
PORTFORWARD_PROTOCOLS = (V4, "portforward.k8s.io")
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes([channel]) + data


def port_preamble(port: int) -> bytes:
    return port.to_bytes(2, "little")


def requested_protocols(header: str) -> list[str]:
    return [p.strip() for p in header.split(",") if p.strip()]


class WSByteConn:
    """A WebSocket as an ordered byte connection (for SPDY tunnelled in it)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writer = asyncio.ensure_future(self._write_loop())

    async def _write_loop(self) -> None:
        while (data := await self._out.get()) is not None:
            try:
                await self.ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                return

    async def read(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return bytes(msg.data)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return b""

    def write(self, data: bytes) -> None:
        self._out.put_nowait(data)

    def close(self) -> None:
        self._out.put_nowait(None)

    async def wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer, 5)
        await self.ws.close()
