"""SPDY/3.1 framing and a server-side session, as `kubectl exec` (fallback) and
`kubectl port-forward` speak it (k8s.io/apimachinery httpstream/spdy over
moby/spdystream).

Only what those clients use: the client opens streams (SYN_STREAM with
lowercase headers such as `streamtype`, `port`, `requestid`), the server
answers each with an empty SYN_REPLY, both sides send DATA frames and half-close
with FIN; PING is echoed, GOAWAY ends the session, SETTINGS and WINDOW_UPDATE
are accepted and ignored (spdystream does no flow control). Header blocks are
compressed with one zlib stream per direction seeded with the SPDY/3
dictionary, each block ending with a sync flush, exactly as Go's framer does.

The session works over any byte connection with `async read() -> bytes` (b""
at end), `write(bytes)` (buffered, in order) and `close()`: a hijacked HTTP
connection, or a WebSocket carrying SPDY (`SPDY/3.1+portforward.k8s.io`).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_CANCEL = 1, 5
MAX_CHUNK = 32 * 1024

_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type", "date",
    "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
    "if-range", "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma",
    "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after", "server",
    "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
    "public", "set-cookie", "keep-alive", "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service "
    "UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, "
    "Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    out = bytearray()
    for w in _WORDS:  # each entry length-prefixed, then the tail as it is
        out += struct.pack(">I", len(w)) + w.encode()
    return bytes(out) + _TAIL.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    pass


class HeaderCodec:
    """One direction's header compression state (a single zlib stream)."""

    def __init__(self) -> None:
        self._c = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._d = zlib.decompressobj(15, DICTIONARY)

    def encode(self, headers: dict[str, str]) -> bytes:
        raw = bytearray(struct.pack(">I", len(headers)))
        for k, v in headers.items():
            kb, vb = k.lower().encode(), v.encode()
            raw += struct.pack(">I", len(kb)) + kb + struct.pack(">I", len(vb)) + vb
        return self._c.compress(bytes(raw)) + self._c.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._d.decompress(block)
        except zlib.error as e:
            raise ProtocolError(f"header block: {e}") from None
        try:
            (n,), pos = struct.unpack_from(">I", raw, 0), 4
            out: dict[str, str] = {}
            for _ in range(n):
                (ln,) = struct.unpack_from(">I", raw, pos)
                name = raw[pos + 4:pos + 4 + ln].decode()
                pos += 4 + ln
                (lv,) = struct.unpack_from(">I", raw, pos)
                value = raw[pos + 4:pos + 4 + lv].decode()
                pos += 4 + lv
                out[name.lower()] = value.split("\x00")[0]
        except (struct.error, UnicodeDecodeError) as e:
            raise ProtocolError(f"header block: {e}") from None
        return out


def control_frame(ftype: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


class ByteConn(Protocol):
    async def read(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Stream:
    """One SPDY stream opened by the client: read what it sends, write back."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str], fin: bool) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._q: asyncio.Queue[bytes] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        self.reset = False
        if fin:
            self._remote_fin()

    def _remote_fin(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self._q.put_nowait(b"")

    async def read(self) -> bytes:
        """The next chunk the client sent; b"" once it half-closed (or reset)."""
        data = await self._q.get()
        if not data:
            self._q.put_nowait(b"")  # stay at end of stream for later readers
        return data

    def write(self, data: bytes) -> None:
        if self.local_closed or self.reset or self.session.closed:
            return
        for i in range(0, len(data), MAX_CHUNK):
            self.session.send(data_frame(self.id, 0, data[i:i + MAX_CHUNK]))

    def close(self) -> None:
        """Half-close: FIN, no more data from us."""
        if not self.local_closed and not self.reset and not self.session.closed:
            self.session.send(data_frame(self.id, FLAG_FIN, b""))
        self.local_closed = True

    def abort(self, status: int = RST_CANCEL) -> None:
        if not self.reset and not self.session.closed:
            self.session.send(control_frame(RST_STREAM, 0, struct.pack(">II", self.id, status)))
        self.reset = True
        self._remote_fin()


class Session:
    """Server side of a SPDY/3.1 connection. `on_stream` is called (as a task)
    for every stream the client opens, after its SYN_REPLY was queued."""

    def __init__(self, conn: ByteConn, on_stream: Callable[[Stream], Awaitable[None] | None]) -> None:
        self.conn = conn
        self.on_stream = on_stream
        self.streams: dict[int, Stream] = {}
        self.tx = HeaderCodec()
        self.rx = HeaderCodec()
        self.closed = False
        self.last_good = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, frame: bytes) -> None:
        if not self.closed:
            self.conn.write(frame)

    async def serve(self) -> None:
        """Read frames until the client goes away; then every stream ends."""
        buf = bytearray()
        try:
            while True:
                while len(buf) < 8:
                    chunk = await self.conn.read()
                    if not chunk:
                        return
                    buf += chunk
                length = int.from_bytes(buf[5:8], "big")
                while len(buf) < 8 + length:
                    chunk = await self.conn.read()
                    if not chunk:
                        return
                    buf += chunk
                frame, buf = bytes(buf[:8 + length]), buf[8 + length:]
                self._handle(frame)
        except ProtocolError as e:
            log.debug("spdy protocol error: %s", e)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for s in self.streams.values():
                s._remote_fin()

    def _handle(self, frame: bytes) -> None:
        flags, payload = frame[4], frame[8:]
        if not frame[0] & 0x80:  # DATA
            sid = struct.unpack_from(">I", frame, 0)[0] & 0x7FFFFFFF
            s = self.streams.get(sid)
            if s is None or s.reset:
                return
            if payload:
                s._q.put_nowait(payload)
            if flags & FLAG_FIN:
                s._remote_fin()
            return
        version, ftype = struct.unpack_from(">HH", frame, 0)
        if version & 0x7FFF != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version & 0x7FFF}")
        if ftype == SYN_STREAM:
            sid = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            headers = self.rx.decode(payload[10:])
            if sid in self.streams or sid % 2 == 0:
                self.send(control_frame(RST_STREAM, 0, struct.pack(">II", sid, RST_PROTOCOL_ERROR)))
                return
            self.last_good = sid
            s = Stream(self, sid, headers, bool(flags & FLAG_FIN))
            self.streams[sid] = s
            self.send(control_frame(SYN_REPLY, 0, struct.pack(">I", sid) + self.tx.encode({})))
            res = self.on_stream(s)
            if asyncio.iscoroutine(res):
                t = asyncio.ensure_future(res)
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
        elif ftype == RST_STREAM:
            sid = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            s = self.streams.pop(sid, None)
            if s is not None:
                s.reset = True
                s._remote_fin()
        elif ftype == PING:
            (pid,) = struct.unpack_from(">I", payload, 0)
            if pid % 2 == 1:  # client-initiated: echo it
                self.send(frame)
        elif ftype == GOAWAY:
            for s in self.streams.values():
                s._remote_fin()
        elif ftype in (HEADERS, SYN_REPLY):
            self.rx.decode(payload[4:])  # keep the zlib stream in step
        # SETTINGS, WINDOW_UPDATE: nothing to do (no flow control in spdystream)

    def close(self) -> None:
        """GOAWAY and close the connection."""
        if self.closed:
            return
        self.send(control_frame(GOAWAY, 0, struct.pack(">II", self.last_good, 0)))
        self.closed = True
        for t in list(self._tasks):
            t.cancel()
        self.conn.close()
