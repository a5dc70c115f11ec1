"""Taking over an aiohttp server connection after an HTTP Upgrade.

aiohttp upgrades only to WebSocket by itself. SPDY/3.1 (`kubectl exec` and
`port-forward`'s fallback) and the apiserver's byte-for-byte proxy of an
upgraded exec/attach/port-forward connection need the raw byte stream instead.
`RawConn.take(request)` installs itself as the connection's payload parser
(the hook aiohttp's own WebSocketResponse uses), so every byte after the
request head is delivered here; `hijacked()` is what the handler returns once
it is done, so that aiohttp neither writes a response nor keeps the connection.

Bytes are read with `read()` (any chunk, b"" at end of stream) and written
with `write()` (buffered by the transport; `drain()` waits when the peer is
slow).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

HIGH_WATER = 1 << 20  # pause reading from the peer above this many unread bytes


class _Feed:
    """The object aiohttp feeds with the bytes that follow the request head."""

    def __init__(self, conn: RawConn) -> None:
        self.conn = conn

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.conn._on_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.conn._on_eof()


class RawConn:
    def __init__(self, transport: asyncio.Transport, protocol: Any) -> None:
        self.transport = transport
        self.protocol = protocol
        self._buf = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    @classmethod
    def take(cls, request: web.Request) -> RawConn:
        transport, protocol = request.transport, request.protocol
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection closed before the upgrade")
        conn = cls(transport, protocol)  # type: ignore[arg-type]
        protocol.keep_alive(False)
        protocol.set_parser(_Feed(conn))
        return conn

    # -- reading --------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > HIGH_WATER and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def _on_eof(self) -> None:
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        while not self._buf:
            if self._eof or self.transport.is_closing():
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._buf)
        self._buf.clear()
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        return data

    # -- writing --------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if data and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        helper = getattr(self.protocol, "_drain_helper", None)
        if helper is not None and not self.transport.is_closing():
            try:
                await helper()
            except ConnectionError:
                pass

    def close(self) -> None:
        self._eof = True
        self._wake()
        self.transport.close()


class _Hijacked(web.StreamResponse):
    """What a handler returns after it took the connection over: aiohttp must
    write nothing more on it."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def hijacked() -> web.StreamResponse:
    return _Hijacked()


def switching_protocols(headers: dict[str, str]) -> bytes:
    """A raw `101 Switching Protocols` response head."""
    lines = ["HTTP/1.1 101 Switching Protocols"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
