"""The agent's exec and attach sessions: the kubelet's /exec and /attach.

    GET|POST /exec/{namespace}/{pod}/{container}?command=..&stdin&stdout&stderr&tty
    GET|POST /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty

The client (kubectl, the Python client, through the apiserver's proxy) either
upgrades to a WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`,
`channel.k8s.io`: one channel byte per message) or to SPDY/3.1 (one SPDY stream
per standard stream, named by its `streamtype` header; v4 semantics). Either
way a session moves stdin to the process, stdout/stderr back, applies terminal
resizes, and ends with a Status on the error stream: Success, or Failure with
reason NonZeroExitCode and cause ExitCode carrying the exit code (kubectl exits
with it), or an InternalError when the command could not start.

Errors before the upgrade are plain text with the kubelet's wording; the
apiserver passes them through, and kubectl shows "unable to upgrade
connection: <text>".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from kybern.machinery import spdy, wsstream
from kybern.machinery.upgrade import RawConn, hijacked, switching_protocols
from kybern.node.runtimes.base import RUNNING, ContainerError

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent

log = logging.getLogger(__name__)

SPDY_REMOTECOMMAND = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                      "channel.k8s.io")
STREAM_CREATION_TIMEOUT = 30.0
_CHANNEL = {"stdout": wsstream.STDOUT, "stderr": wsstream.STDERR}


class StreamError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def flag(q: Any, name: str) -> bool:
    return (q.get(name) or "").lower() in ("1", "true", "yes")


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def client_protocols(request: web.Request) -> list[str]:
    out: list[str] = []
    for v in request.headers.getall("X-Stream-Protocol-Version", []):
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def negotiate(request: web.Request, server: tuple[str, ...]) -> str:
    """httpstream.Handshake: the first protocol of the client's the server has."""
    wanted = client_protocols(request)
    if not wanted:
        return ""
    for p in wanted:
        if p in server:
            return p
    raise StreamError(403, f"unable to upgrade: unable to negotiate protocol: client supports {wanted}, "
                           f"server accepts {list(server)}")


def spdy_upgrade(request: web.Request, protocol: str) -> RawConn:
    if request.headers.get("Upgrade", "").lower() != "spdy/3.1" or \
            "upgrade" not in request.headers.get("Connection", "").lower():
        raise StreamError(400, "unable to upgrade: missing upgrade headers in request: " +
                          repr(dict(request.headers)))
    conn = RawConn.take(request)
    headers = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
    if protocol:
        headers["X-Stream-Protocol-Version"] = protocol
    conn.write(switching_protocols(headers))
    return conn


def status_success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def status_exit(code: int) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: command terminated with exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def status_internal(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]}, "code": 500}


# -- transports ---------------------------------------------------------------------
class Transport:
    """What a session needs from the connection, whatever the protocol."""

    v4 = True  # Status as JSON on the error stream (else: text, failures only)
    on_resize: Callable[[int, int], None] = staticmethod(lambda w, h: None)

    def __init__(self) -> None:
        self.gone = asyncio.Event()  # the client went away

    def stdin(self) -> AsyncIterator[bytes]: ...

    async def write(self, channel: int, data: bytes) -> None: ...

    async def finish(self, status: dict[str, Any]) -> None: ...

    async def status_bytes(self, status: dict[str, Any]) -> bytes:
        if self.v4:
            return orjson.dumps(status)
        return b"" if status.get("status") == "Success" else str(status.get("message", "")).encode()

    def _resize_json(self, data: bytes) -> None:
        try:
            size = json.loads(data)
            self.on_resize(int(size.get("Width", 0)), int(size.get("Height", 0)))
        except (ValueError, TypeError, AttributeError):
            pass


class WSTransport(Transport):
    def __init__(self, ws: web.WebSocketResponse, opts: dict[str, bool]) -> None:
        super().__init__()
        self.ws = ws
        self.protocol = ws.ws_protocol or ""
        self.v4 = self.protocol in (wsstream.V4, wsstream.V5)
        self._stdin: asyncio.Queue[bytes] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                # text frames too: the Python client sends str stdin as text (as x/net/websocket
                # upstream, the frame type does not matter for the binary channel protocols)
                raw = msg.data.encode() if msg.type == WSMsgType.TEXT else msg.data
                if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT) or not raw:
                    continue
                ch, data = raw[0], bytes(raw[1:])
                if ch == wsstream.STDIN and data:
                    self._stdin.put_nowait(data)
                elif ch == wsstream.RESIZE:
                    self._resize_json(data)
                elif ch == wsstream.CLOSE and self.protocol == wsstream.V5 and data[:1] == bytes([0]):
                    self._stdin.put_nowait(b"")
        finally:
            self._stdin.put_nowait(b"")
            self.gone.set()

    async def stdin(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        while data := await self._stdin.get():
            yield data

    async def write(self, channel: int, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_bytes(wsstream.frame(channel, data))

    async def finish(self, status: dict[str, Any]) -> None:
        body = await self.status_bytes(status)
        if body:
            await self.write(wsstream.ERROR, body)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()


class SpdyTransport(Transport):
    def __init__(self, conn: RawConn, protocol: str) -> None:
        super().__init__()
        self.v4 = protocol in ("v4.channel.k8s.io", "v5.channel.k8s.io")
        self.streams: dict[str, spdy.Stream] = {}
        self._arrived: asyncio.Queue[spdy.Stream] = asyncio.Queue()
        self.session = spdy.Session(conn, self._arrived.put_nowait)
        self.conn = conn
        self._serve = asyncio.ensure_future(self._run())
        self._resizer: asyncio.Future[None] | None = None

    async def _run(self) -> None:
        try:
            await self.session.serve()
        finally:
            self.gone.set()

    async def wait_streams(self, expected: int) -> None:
        async def collect() -> None:
            while len(self.streams) < expected:
                s = await self._arrived.get()
                self.streams[s.headers.get("streamtype", "")] = s
        await asyncio.wait_for(collect(), STREAM_CREATION_TIMEOUT)
        if "resize" in self.streams:
            self._resizer = asyncio.ensure_future(self._resizes(self.streams["resize"]))

    async def _resizes(self, s: spdy.Stream) -> None:
        buf, dec = "", json.JSONDecoder()
        while chunk := await s.read():
            buf += chunk.decode(errors="replace")
            while buf.strip():
                try:
                    obj, end = dec.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                self._resize_json(orjson.dumps(obj))

    async def stdin(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        s = self.streams.get("stdin")
        if s is None:
            return
        while data := await s.read():
            yield data

    async def write(self, channel: int, data: bytes) -> None:
        s = self.streams.get({wsstream.STDOUT: "stdout", wsstream.STDERR: "stderr"}.get(channel, "error"))
        if s is not None:
            s.write(data)
            await self.conn.drain()

    async def finish(self, status: dict[str, Any]) -> None:
        body = await self.status_bytes(status)
        err = self.streams.get("error")
        if err is not None and body:
            err.write(body)
        for name in ("stdout", "stderr", "error"):
            if (s := self.streams.get(name)) is not None:
                s.close()
        await self.conn.drain()
        self.session.close()
        if self._resizer is not None:
            self._resizer.cancel()
        self._serve.cancel()


async def open_transport(request: web.Request, opts: dict[str, bool]) -> Transport:
    if is_websocket(request):
        ws = web.WebSocketResponse(protocols=wsstream.REMOTECOMMAND_PROTOCOLS, compress=False,
                                   max_msg_size=0, autoping=True)
        await ws.prepare(request)
        t: Transport = WSTransport(ws, opts)
        # an empty message on the lowest writable channel tells the client we are ready
        first = wsstream.STDOUT if opts["stdout"] else wsstream.STDERR if opts["stderr"] else wsstream.ERROR
        await t.write(first, b"")
        return t
    protocol = negotiate(request, SPDY_REMOTECOMMAND)
    conn = spdy_upgrade(request, protocol)
    st = SpdyTransport(conn, protocol)
    expected = 1 + sum(opts[k] for k in ("stdin", "stdout", "stderr")) + (
        1 if opts["tty"] and protocol not in ("", "channel.k8s.io", "v2.channel.k8s.io") else 0)
    try:
        await st.wait_streams(expected)
    except TimeoutError:
        st.session.close()
        raise ConnectionResetError("timed out waiting for client to create streams") from None
    return st


# -- sessions -------------------------------------------------------------------------
def _options(request: web.Request) -> dict[str, bool]:
    q = request.query
    opts = {k: flag(q, k) for k in ("stdin", "stdout", "stderr", "tty")}
    if opts["tty"]:
        opts["stderr"] = False  # a terminal has one output stream
    if not (opts["stdin"] or opts["stdout"] or opts["stderr"]):
        raise StreamError(400, "you must specify at least 1 of stdin, stdout, stderr")
    return opts


def _container(agent: NodeAgent, request: web.Request) -> tuple[Any, Any, dict[str, Any]]:
    ns, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
    worker = agent.worker_for(ns, pod)
    if worker is None or worker.pod is None:
        raise StreamError(404, "pod does not exist")
    v = worker.views.get(name)
    if v is None or v.current is None or v.current.state != RUNNING:
        raise StreamError(404, f'container not found ("{name}")')
    pod_spec = worker.pod.get("spec") or {}
    spec = next((c for c in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []) +
                 (pod_spec.get("ephemeralContainers") or []) if c.get("name") == name), {})
    return worker, v.current, spec


async def _pump_output(t: Transport, q: asyncio.Queue[Any], opts: dict[str, bool]) -> int:
    """Copy the output to the client until it ends; returns how many bytes were sent."""
    sent = 0
    while (item := await q.get()) is not None:
        stream, data = item
        if opts["tty"] or opts[stream]:
            await t.write(wsstream.STDOUT if opts["tty"] else _CHANNEL[stream], data)
            sent += len(data)
    return sent


async def _until_gone(t: Transport, work: asyncio.Future[Any]) -> bool:
    """Run `work` unless the client goes away first; True if it completed."""
    gone = asyncio.ensure_future(t.gone.wait())
    done, _ = await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if work not in done:
        work.cancel()
        return False
    return True


async def serve_exec(agent: NodeAgent, request: web.Request) -> web.StreamResponse:
    try:
        opts = _options(request)
        cmd = request.query.getall("command", [])
        if not cmd:
            raise StreamError(400, "you must specify at least one command for the container")
        _, cs, _ = _container(agent, request)
        t = await open_transport(request, opts)
    except StreamError as e:
        return web.Response(status=e.code, text=e.message)
    except ConnectionResetError:
        return hijacked()
    try:
        ep = await agent.runtime.exec(cs.id, cmd, tty=opts["tty"], stdin=opts["stdin"])
    except (ContainerError, OSError) as e:
        msg = e.message if isinstance(e, ContainerError) else f'exec: "{cmd[0]}": {e.strerror or e}'
        await t.finish(status_internal(f"error executing command in container: failed to exec in container: "
                                       f"{msg}"))
        return _done(t)
    t.on_resize = ep.io.resize

    async def feed() -> None:
        async for data in t.stdin():
            await ep.io.write_stdin(data)
        ep.io.close_stdin()

    feeder = asyncio.ensure_future(feed()) if opts["stdin"] else None

    async def run() -> int:
        exited = asyncio.ensure_future(ep.wait())  # publishes the end of output when done
        try:
            await _pump_output(t, ep.output, opts)
            return await exited
        finally:
            exited.cancel()

    work = asyncio.ensure_future(run())
    completed = await _until_gone(t, work)
    if feeder is not None:
        feeder.cancel()
    if not completed:
        ep.kill()  # nobody is listening any more: do not leave the process behind
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ep.wait(), 5)
        await t.finish(status_success())
        return _done(t)
    code = work.result()
    await t.finish(status_success() if code == 0 else status_exit(code))
    return _done(t)


async def serve_attach(agent: NodeAgent, request: web.Request) -> web.StreamResponse:
    try:
        opts = _options(request)
        _, cs, spec = _container(agent, request)
        io = agent.runtime.attach(cs.id)
        if io is None:
            raise StreamError(404, f'container not found ("{request.match_info["container"]}")')
        if opts["stdin"] and not io.stdin:
            opts["stdin"] = False  # kubectl already warned: the container has no stdin to attach to
        t = await open_transport(request, opts)
    except StreamError as e:
        return web.Response(status=e.code, text=e.message)
    except ConnectionResetError:
        return hijacked()
    t.on_resize = io.resize
    q = io.subscribe()

    async def feed() -> None:
        async for data in t.stdin():
            await io.write_stdin(data)
        if spec.get("stdinOnce"):
            io.close_stdin()  # the client's stdin ended: so does the container's

    feeder = asyncio.ensure_future(feed()) if opts["stdin"] else None
    attached_at = time.monotonic()
    pump = asyncio.ensure_future(_pump_output(t, q, opts))
    completed = await _until_gone(t, pump)
    io.unsubscribe(q)
    if feeder is not None:
        feeder.cancel()
        if spec.get("stdinOnce"):
            io.close_stdin()
    if completed and pump.result() == 0 and time.monotonic() - attached_at < 1.0 and _wrote_before(cs):
        # attached in the instant between the container's exit and the agent seeing it
        # (it ended at once, having written everything before): as an attach to an exited
        # container, this fails, so `kubectl run -i` falls back to the logs (upstream's path)
        await t.finish(status_internal(f"container {cs.name} exited before it could be attached"))
        return _done(t)
    await t.finish(status_success())
    return _done(t)


def _wrote_before(cs: Any) -> bool:
    try:
        return os.path.getsize(cs.log_path) > 0
    except (OSError, AttributeError, TypeError):
        return False


def _done(t: Transport) -> web.StreamResponse:
    if isinstance(t, WSTransport):
        return t.ws
    return hijacked()
