"""Container probes, as the kubelet's prober: liveness, readiness and startup
probes with httpGet, tcpSocket, exec and grpc.

One `ProbeWorker` per (container instance, probe kind) runs on its own timer:
first at startedAt + initialDelaySeconds, then every periodSeconds, each try
bounded by timeoutSeconds. A result only flips after successThreshold
successes or failureThreshold failures in a row. Results are kept per
container ID, so a restarted container starts from the initial results again:

    readiness  starts Failure  -> the container is not ready until it passes
    liveness   starts Success  -> a Failure makes the pod worker kill the
                                  container ("... failed liveness probe, will be
                                  restarted") and restartPolicy takes over
    startup    starts Unknown  -> liveness and readiness wait until it passes;
                                  a Failure kills the container like liveness

Every failed try records the kubelet's `Unhealthy` event ("Liveness probe
failed: HTTP probe failed with statuscode: 500"). A change of result wakes the
pod worker, which recomputes `ready`/`started` and the pod's conditions.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from kybern.node.runtimes.base import ContainerError, ContainerStatus

if TYPE_CHECKING:
    from kybern.node.pod_worker import PodWorker

log = logging.getLogger(__name__)

SUCCESS, FAILURE, UNKNOWN = "Success", "Failure", "Unknown"
ERRORED = "Errored"  # the probe could not be run (probe.Unknown with an error): counts as a failure
_NOT_FOUND = re.compile(r'exec: ".*": executable file not found in \$PATH')
KINDS = {"livenessProbe": "Liveness", "readinessProbe": "Readiness", "startupProbe": "Startup"}
INITIAL = {"livenessProbe": SUCCESS, "readinessProbe": FAILURE, "startupProbe": UNKNOWN}
USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    """A probe/hook port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"unable to find port {port!r} in container {container.get('name')!r}")


async def http_get(spec: dict[str, Any], container: dict[str, Any], host: str,
                   timeout: float) -> tuple[int, str]:
    """GET as the kubelet's HTTP prober; returns (status code, body prefix).
    Errors are raised with Go's wording ("Get \"http://...\": dial tcp ...")."""
    port = resolve_port(spec.get("port"), container)
    scheme = (spec.get("scheme") or "HTTP").lower()
    path = spec.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{spec.get('host') or host}:{port}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}  # HTTPS: no verification, as upstream
    for h in spec.get("httpHeaders") or []:
        headers[h.get("name", "")] = h.get("value", "")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s, \
                s.get(url, headers=headers, allow_redirects=False, ssl=False) as r:
            body = await r.content.read(MAX_OUTPUT)
            return r.status, body.decode(errors="replace")
    except TimeoutError:
        raise ProbeError(f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while '
                         f'awaiting headers)') from None
    except aiohttp.ClientConnectorError as e:
        reason = "connection refused" if isinstance(e.os_error, ConnectionRefusedError) else str(e.os_error)
        raise ProbeError(f'Get "{url}": dial tcp {e.host}:{e.port}: connect: {reason}') from None
    except aiohttp.ClientError as e:
        raise ProbeError(f'Get "{url}": {e}') from None


async def tcp_connect(spec: dict[str, Any], container: dict[str, Any], host: str, timeout: float) -> None:
    port = resolve_port(spec.get("port"), container)
    addr = f"{spec.get('host') or host}:{port}"
    try:
        _r, w = await asyncio.wait_for(asyncio.open_connection(spec.get("host") or host, port), timeout)
    except TimeoutError:
        raise ProbeError(f"dial tcp {addr}: i/o timeout") from None
    except ConnectionRefusedError:
        raise ProbeError(f"dial tcp {addr}: connect: connection refused") from None
    except OSError as e:
        raise ProbeError(f"dial tcp {addr}: connect: {e.strerror or e}") from None
    w.close()


def go_quote(text: str) -> str:
    """Go's %q of a string (a double-quoted literal with Go escapes), as the kubelet's
    messages quote commands and hook output."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif ch == "\ufffd" or not ch.isprintable():
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# Go's codes.Code names, as grpc-go's status errors print them ("rpc error: code = Unavailable desc = ...")
_GO_CODES = {"OK": "OK", "CANCELLED": "Canceled", "INVALID_ARGUMENT": "InvalidArgument",
             "DEADLINE_EXCEEDED": "DeadlineExceeded", "NOT_FOUND": "NotFound",
             "ALREADY_EXISTS": "AlreadyExists", "PERMISSION_DENIED": "PermissionDenied",
             "RESOURCE_EXHAUSTED": "ResourceExhausted", "FAILED_PRECONDITION": "FailedPrecondition",
             "OUT_OF_RANGE": "OutOfRange", "DATA_LOSS": "DataLoss"}


def go_code(name: str) -> str:
    """A gRPC status code's Go name from Python's enum name (UNAVAILABLE -> Unavailable)."""
    return _GO_CODES.get(name, name.capitalize())


def go_duration(seconds: float) -> str:
    """Go's time.Duration String() of whole seconds (1s, 1m30s, 1h0m0s), as %v prints a timeout."""
    s = int(seconds)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{h}h{m}m{s}s" if h else f"{m}m{s}s" if m else f"{s}s"


def join_host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def grpc_check(spec: dict[str, Any], host: str, timeout: float) -> tuple[str, str]:
    """grpc.health.v1.Health/Check as the kubelet's gRPC prober (pkg/probe/grpc): plaintext,
    User-Agent kube-probe/1.32, one deadline of `timeout` for connecting and the call, and
    its messages. Returns (result, output); every problem is a Failure, as upstream's."""
    # imported here, not at module level: grpcio's C core costs the agent ~13 MB of RSS
    # (docs/node.md), paid only once a gRPC probe runs on this node
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = int(spec.get("port") or 0)  # GRPCAction.port: a number (required), no named ports
    addr = join_host_port(host, port)
    within = go_duration(timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # grpc.aio: the call runs in the event loop (grpc's poller thread wakes it), so a probe
    # waiting out its deadline neither blocks the agent nor holds an executor thread
    async with grpc.aio.insecure_channel(addr, options=[("grpc.primary_user_agent", USER_AGENT)]) as ch:
        try:
            # as grpc-go's WithBlock dial: connection errors are retried until the deadline
            await asyncio.wait_for(ch.channel_ready(), timeout)
        except TimeoutError:
            return FAILURE, (f"timeout: failed to connect service {go_quote(addr)} within {within}: "
                             f"context deadline exceeded")
        except grpc.RpcError as e:
            return FAILURE, f"error: failed to connect service at {go_quote(addr)}: {e}"
        try:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=spec.get("service") or ""),
                timeout=max(0.001, deadline - loop.time()))
        except grpc.aio.AioRpcError as e:
            code = e.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return FAILURE, ("error: this server does not implement the grpc health protocol "
                                 f"(grpc.health.v1.Health): {e.details() or ''}")
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return FAILURE, f"timeout: health rpc did not complete within {within}"
            return FAILURE, (f"error: health rpc probe failed: rpc error: code = {go_code(code.name)} "
                             f"desc = {e.details() or ''}")
    if resp.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
        return FAILURE, f"service unhealthy (responded with {go_quote(name)})"
    # upstream's output "service healthy" is only logged; an output here would record ProbeWarning
    return SUCCESS, ""


class ProbeError(Exception):
    """The probe could not be carried out or failed, with the message to report."""


async def probe_once(worker: PodWorker, container: dict[str, Any], cs: ContainerStatus,
                     probe: dict[str, Any]) -> tuple[str, str]:
    """Run one try of `probe`; returns (result, output)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    host = worker.sandbox_ip
    try:
        if "exec" in probe:
            cmd = list((probe["exec"] or {}).get("command") or [])
            try:
                code, out = await worker.agent.runtime.exec_sync(cs.id, cmd, timeout)
            except TimeoutError:
                return FAILURE, f"command {go_quote(' '.join(cmd))} timed out"
            text = out.decode(errors="replace")
            if code == 127 and _NOT_FOUND.fullmatch(text):
                # the command could not be started at all: the runtime's error, not the
                # command's failure; the kubelet reports it as "errored" (and counts a failure)
                return ERRORED, f"failed to exec in container: {text}"
            return (SUCCESS, text) if code == 0 else (FAILURE, text)
        if "httpGet" in probe:
            code, _body = await http_get(probe["httpGet"], container, host, timeout)
            if 200 <= code < 400:
                return SUCCESS, ""
            return FAILURE, f"HTTP probe failed with statuscode: {code}"
        if "tcpSocket" in probe:
            await tcp_connect(probe["tcpSocket"], container, host, timeout)
            return SUCCESS, ""
        if "grpc" in probe:
            return await grpc_check(probe["grpc"] or {}, host, timeout)
    except (ProbeError, ValueError, ContainerError) as e:
        return FAILURE, str(e)
    return UNKNOWN, "probe has no handler"


class ProbeWorker:
    def __init__(self, manager: ProbeManager, kind: str, container: dict[str, Any], cs: ContainerStatus) -> None:
        self.manager = manager
        self.kind = kind
        self.container = container
        self.cs = cs
        self.probe: dict[str, Any] = container[kind]
        self.result = INITIAL[kind]
        self.output = ""
        self._run_of = (None, 0)  # (last raw result, how many in a row)
        self.task = asyncio.create_task(self._run(), name=f"probe-{kind}-{container['name']}")

    async def _run(self) -> None:
        p = self.probe
        period = max(float(p.get("periodSeconds") or 10), 0.1)
        delay = float(p.get("initialDelaySeconds") or 0)
        start = self.cs.started_at or time.time()
        await asyncio.sleep(max(0.0, start + delay - time.time()))
        while True:
            if self.kind == "startupProbe" or self.manager.started(self.container["name"], self.cs.id):
                try:
                    done = await self._try()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a broken try must not end the worker
                    log.exception("%s probe of %s failed unexpectedly", self.kind, self.container["name"])
                    done = False
                if done:
                    return
            await asyncio.sleep(period)

    async def _try(self) -> bool:
        """One try; True when this worker has nothing left to do."""
        w = self.manager.worker
        result, output = await probe_once(w, self.container, self.cs, self.probe)
        label = KINDS[self.kind]
        if result == ERRORED:
            w.container_event(self.container["name"], "Warning", "Unhealthy",
                              f"{label} probe errored and resulted in unknown state: {output}")
            result = FAILURE
        elif result == FAILURE:
            w.container_event(self.container["name"], "Warning", "Unhealthy", f"{label} probe failed: {output}")
        elif result == SUCCESS and output:
            w.container_event(self.container["name"], "Warning", "ProbeWarning", f"{label} probe warning: {output}")
        last, n = self._run_of
        n = n + 1 if last == result else 1
        self._run_of = (result, n)
        threshold = int(self.probe.get("successThreshold") or 1) if result == SUCCESS else \
            int(self.probe.get("failureThreshold") or 3)
        if result in (SUCCESS, FAILURE) and n >= threshold and self.result != result:
            self.result, self.output = result, output
            w.wake()
        # a failed liveness/startup probe ends this container instance; a passed
        # startup probe is never run again
        return (self.kind != "readinessProbe" and self.result == FAILURE) or \
            (self.kind == "startupProbe" and self.result == SUCCESS)

    def cancel(self) -> None:
        self.task.cancel()


def probed_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers whose probes run: the sidecars (init containers with
    `restartPolicy: Always`, probed as upstream) and the regular containers."""
    return [*(c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"),
            *(spec.get("containers") or [])]


class ProbeManager:
    """The probe workers of one pod, keyed by (container name, container ID, kind)."""

    def __init__(self, worker: PodWorker) -> None:
        self.worker = worker
        self.workers: dict[tuple[str, str, str], ProbeWorker] = {}

    def sync(self, pod: dict[str, Any], running: Callable[[str], ContainerStatus | None]) -> None:
        """Have a worker for each probe of each running container; drop the rest."""
        want: dict[tuple[str, str, str], tuple[dict[str, Any], ContainerStatus]] = {}
        for c in probed_containers(pod.get("spec") or {}):
            cs = running(c["name"])
            if cs is None:
                continue
            for kind in KINDS:
                if isinstance(c.get(kind), dict):
                    want[(c["name"], cs.id, kind)] = (c, cs)
        for key in list(self.workers):
            if key not in want:
                self.workers.pop(key).cancel()
        for key, (c, cs) in want.items():
            if key not in self.workers:
                self.workers[key] = ProbeWorker(self, key[2], c, cs)

    def _result(self, name: str, cid: str, kind: str) -> str | None:
        """The probe's current result; its initial one before its worker exists;
        None when the container has no such probe."""
        w = self.workers.get((name, cid, kind))
        if w is not None:
            return w.result
        spec = (self.worker.pod or {}).get("spec") or {}
        c = next((c for c in probed_containers(spec) if c.get("name") == name), {})
        return INITIAL[kind] if isinstance(c.get(kind), dict) else None

    def started(self, name: str, cid: str) -> bool:
        r = self._result(name, cid, "startupProbe")
        return r is None or r == SUCCESS

    def ready(self, name: str, cid: str) -> bool:
        if not self.started(name, cid):
            return False
        r = self._result(name, cid, "readinessProbe")
        return r is None or r == SUCCESS

    def failed(self, name: str, cid: str) -> str | None:
        """"liveness" or "startup" when that probe says the container must be
        killed, else None."""
        if self._result(name, cid, "startupProbe") == FAILURE:
            return "startup"
        if self._result(name, cid, "livenessProbe") == FAILURE:
            return "liveness"
        return None

    def probe_grace(self, name: str, cid: str, kind: str) -> float | None:
        """probe-level terminationGracePeriodSeconds, which overrides the pod's."""
        w = self.workers.get((name, cid, kind + "Probe"))
        v = w.probe.get("terminationGracePeriodSeconds") if w is not None else None
        return float(v) if v is not None else None

    def stop(self) -> None:
        for w in self.workers.values():
            w.cancel()
        self.workers.clear()
