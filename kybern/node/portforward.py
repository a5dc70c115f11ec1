"""The agent's port-forward sessions: the kubelet's /portforward/{namespace}/{pod}.

Three ways in, one job: copy bytes between the client and a TCP port of the pod.

- `SPDY/3.1+portforward.k8s.io` WebSocket (kubectl >= 1.31) and plain
  `Upgrade: SPDY/3.1` (`PORT_FORWARD_WEBSOCKETS=false`, older kubectl): each
  forwarded connection is a pair of SPDY streams, `streamtype: data|error`,
  with the same `port` and `requestid` headers. Errors go to the error stream
  as JSON {"message", "closeConnection"}, as the kubelet writes them.
- `v4.channel.k8s.io` WebSocket (the Python client): one connection per port in
  `?ports=`; channels 2k (data) and 2k+1 (error), each opened by the port
  number, 2 bytes little-endian.

The pod's network namespace is the host's in the process runtime, so "the
pod's port" is localhost:port, as upstream dials localhost inside the pod's
namespace (IPv4 first, then IPv6).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING

import orjson
from aiohttp import WSMsgType, web

from kybern.machinery import spdy, wsstream
from kybern.machinery.upgrade import hijacked
from kybern.node.streams import StreamError, is_websocket, negotiate, spdy_upgrade

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent

PORTFORWARD_PROTOCOL = "portforward.k8s.io"


async def dial(port: int, netns: str = "") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if netns:  # the pod has its own network namespace: its localhost (kybern/network/podnet.py)
        return await _dial_in_netns(port, netns)
    try:
        return await asyncio.open_connection("127.0.0.1", port)
    except OSError as e4:
        try:
            return await asyncio.open_connection("::1", port)
        except OSError:
            reason = os.strerror(e4.errno).lower() if e4.errno else str(e4)
            raise OSError(f"dial tcp4 127.0.0.1:{port}: connect: {reason}") from None


async def _dial_in_netns(port: int, netns: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    from kybern.network.netns import socket_in_netns

    sock = await asyncio.to_thread(socket_in_netns, netns)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except OSError as e:
        sock.close()
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise OSError(f"dial tcp4 127.0.0.1:{port}: connect: {reason}") from None
    return await asyncio.open_connection(sock=sock)


class _Target:
    """Names used in error messages, as the kubelet's (sandbox id, pod uid), and
    the pod's network namespace ("" = the host's)."""

    def __init__(self, sandbox: str, uid: str, netns: str = "") -> None:
        self.sandbox, self.uid, self.netns = sandbox, uid, netns

    def error(self, port: int, err: Exception) -> str:
        return f"error forwarding port {port} to pod {self.sandbox}, uid {self.uid}: {err}"


def _target(agent: NodeAgent, request: web.Request) -> _Target:
    worker = agent.worker_for(request.match_info["namespace"], request.match_info["pod"])
    if worker is None or worker.pod is None:
        raise StreamError(404, "pod does not exist")
    return _Target(worker.sandbox_id or "", "", getattr(worker, "sandbox_netns", ""))


async def serve_portforward(agent: NodeAgent, request: web.Request) -> web.StreamResponse:
    try:
        target = _target(agent, request)
        if is_websocket(request):
            ws = web.WebSocketResponse(protocols=(wsstream.SPDY_TUNNEL,) + wsstream.PORTFORWARD_PROTOCOLS,
                                       compress=False, max_msg_size=0, autoping=True)
            ports = _ports(request) if wsstream.SPDY_TUNNEL not in wsstream.requested_protocols(
                request.headers.get("Sec-WebSocket-Protocol", "")) else []
            await ws.prepare(request)
            if ws.ws_protocol == wsstream.SPDY_TUNNEL:
                conn = wsstream.WSByteConn(ws)
                await _spdy_forward(conn, target)
                await conn.wait_closed()
            else:
                await _ws_forward(ws, ports, target)
            return ws
        protocol = negotiate(request, (PORTFORWARD_PROTOCOL,))
        raw = spdy_upgrade(request, protocol)
    except StreamError as e:
        return web.Response(status=e.code, text=e.message)
    await _spdy_forward(raw, target)
    return hijacked()


def _ports(request: web.Request) -> list[int]:
    raw = request.query.getall("ports", []) + request.query.getall("port", [])
    if not raw:
        raise StreamError(400, 'query parameter "port" is required')
    ports = []
    for item in raw:
        for p in item.split(","):
            try:
                port = int(p)
            except ValueError:
                raise StreamError(400, f'unable to parse "{item}" as a port') from None
            if not 0 < port < 65536:
                raise StreamError(400, f'port "{item}" must be > 0')
            ports.append(port)
    return ports


# -- SPDY: a pair of streams per forwarded connection -------------------------------------
async def _spdy_forward(conn: spdy.ByteConn, target: _Target) -> None:
    pairs: dict[str, dict[str, spdy.Stream]] = {}
    tasks: set[asyncio.Task[None]] = set()

    def on_stream(s: spdy.Stream) -> None:
        port_s, kind = s.headers.get("port", ""), s.headers.get("streamtype", "")
        if not port_s.isdigit() or not 0 < int(port_s) < 65536 or kind not in ("data", "error"):
            s.abort(spdy.RST_PROTOCOL_ERROR)
            return
        rid = s.headers.get("requestid") or str(s.id if kind == "error" else s.id - 2)
        pair = pairs.setdefault(rid, {})
        pair[kind] = s
        if len(pair) == 2:
            del pairs[rid]
            t = asyncio.ensure_future(_forward_pair(int(port_s), pair["data"], pair["error"], target))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    session = spdy.Session(conn, on_stream)
    try:
        await session.serve()
    finally:
        for t in list(tasks):
            t.cancel()
        session.close()


async def _forward_pair(port: int, data: spdy.Stream, err: spdy.Stream, target: _Target) -> None:
    try:
        reader, writer = await dial(port, target.netns)
    except OSError as e:
        err.write(orjson.dumps({"closeConnection": True, "message": target.error(port, e)}) + b"\n")
        data.close()
        err.close()
        return

    async def upstream() -> None:  # client -> pod
        while chunk := await data.read():
            writer.write(chunk)
            await writer.drain()
        if not data.reset and writer.can_write_eof():
            writer.write_eof()

    up = asyncio.ensure_future(upstream())
    try:
        while chunk := await reader.read(65536):  # pod -> client
            if data.reset:
                break
            data.write(chunk)
            await asyncio.sleep(0)
    except (ConnectionError, OSError):
        pass
    finally:
        up.cancel()
        data.close()
        err.close()
        writer.close()


# -- WebSocket channels (the Python client) ------------------------------------------------
async def _ws_forward(ws: web.WebSocketResponse, ports: list[int], target: _Target) -> None:
    # the client may send before the dial to the pod is done: its data waits for it
    loop = asyncio.get_running_loop()
    writers: dict[int, asyncio.Future[asyncio.StreamWriter | None]] = {k: loop.create_future()
                                                                       for k in range(len(ports))}
    for k, port in enumerate(ports):
        await ws.send_bytes(wsstream.frame(2 * k, wsstream.port_preamble(port)))
        await ws.send_bytes(wsstream.frame(2 * k + 1, wsstream.port_preamble(port)))

    async def pod_to_client(k: int, port: int) -> None:
        try:
            reader, writer = await dial(port, target.netns)
        except OSError as e:
            writers[k].set_result(None)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(wsstream.frame(2 * k + 1, target.error(port, e).encode()))
            return
        writers[k].set_result(writer)
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            while chunk := await reader.read(65536):
                await ws.send_bytes(wsstream.frame(2 * k, chunk))

    async def client_to_pod() -> None:
        async for msg in ws:
            raw = msg.data.encode() if msg.type == WSMsgType.TEXT else msg.data
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT) or len(raw) < 2:
                continue
            ch = raw[0]
            dialed = writers.get(ch // 2) if ch % 2 == 0 else None
            w = await dialed if dialed is not None else None
            if w is not None:
                w.write(raw[1:])
                with contextlib.suppress(ConnectionError):
                    await w.drain()

    forwarders = asyncio.gather(*(pod_to_client(k, p) for k, p in enumerate(ports)))
    reading = asyncio.ensure_future(client_to_pod())
    await asyncio.wait({forwarders, reading}, return_when=asyncio.FIRST_COMPLETED)
    reading.cancel()
    forwarders.cancel()
    for f in writers.values():
        if f.done() and f.result() is not None:
            f.result().close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), 5)
