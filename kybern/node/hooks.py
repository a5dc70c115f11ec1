"""Container lifecycle hooks (postStart, preStop) and graceful stop, as the
kubelet's lifecycle handler runner and killContainer.

Handlers: `exec` (runs beside the container, in its environment and working
dir), `httpGet` (host defaults to the pod IP), `sleep`. A failed postStart kills
the container (events `FailedPostStartHook`, then `Killing`); a failed preStop
is reported (`FailedPreStopHook`) and the stop goes on.

Stopping a container: the `Killing` event, the preStop hook (bounded by the
grace period), then SIGTERM to the whole process tree, the rest of the grace
period (at least 2 s, as upstream's minimumGracePeriodInSeconds) and SIGKILL.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from kybern.node.probes import ProbeError, go_quote, http_get
from kybern.node.runtimes.base import ContainerError

if TYPE_CHECKING:
    from kybern.node.pod_worker import PodWorker

MIN_GRACE = 2.0


async def run_handler(worker: PodWorker, container: dict[str, Any], container_id: str,
                      handler: dict[str, Any], timeout: float) -> str | None:
    """Run one lifecycle handler; returns the kubelet's failure message, or None."""
    name, pod_ref = container["name"], worker.pod_ref
    if "exec" in handler:
        cmd = list((handler["exec"] or {}).get("command") or [])
        try:
            code, out = await worker.agent.runtime.exec_sync(container_id, cmd, timeout)
        except TimeoutError:
            code, out = -1, b""
            err = f"command '{' '.join(cmd)}' timed out"
        except ContainerError as e:
            code, out, err = -1, b"", e.message
        else:
            err = f"command '{' '.join(cmd)}' exited with {code}: "
        if code == 0:
            return None
        return (f'Exec lifecycle hook ([{" ".join(cmd)}]) for Container "{name}" in Pod "{pod_ref}" failed - '
                f'error: {err}, message: {go_quote(out.decode(errors="replace"))}')
    if "httpGet" in handler:
        spec = handler["httpGet"] or {}
        try:
            await http_get(spec, container, worker.sandbox_ip, timeout)
        except (ProbeError, ValueError) as e:
            return (f'HTTP lifecycle hook ({spec.get("path", "")}) for Container "{name}" in Pod "{pod_ref}" '
                    f'failed - error: {e}')
        return None
    if "sleep" in handler:
        await asyncio.sleep(min(float((handler["sleep"] or {}).get("seconds") or 0), timeout))
        return None
    return None


async def post_start(worker: PodWorker, container: dict[str, Any], container_id: str) -> bool:
    """Run postStart; on failure record the events, kill the container and
    return False."""
    handler = (container.get("lifecycle") or {}).get("postStart")
    if not handler:
        return True
    pod = worker.pod
    grace = worker.grace(pod) if pod is not None else MIN_GRACE
    msg = await run_handler(worker, container, container_id, handler, timeout=max(grace, 30.0))
    if msg is None:
        return True
    worker.container_event(container["name"], "Warning", "FailedPostStartHook", msg)
    await stop(worker, container, container_id, grace, "FailedPostStartHook", run_pre_stop=False)
    return False


async def stop(worker: PodWorker, container: dict[str, Any] | None, container_id: str, grace: float,
               message: str, *, run_pre_stop: bool = True) -> None:
    """killContainer: event, preStop, SIGTERM, grace, SIGKILL of the whole tree."""
    pod = worker.pod
    name = (container or {}).get("name", "")
    worker.container_event(name, "Normal", "Killing", message)
    handler = ((container or {}).get("lifecycle") or {}).get("preStop") if run_pre_stop else None
    if handler and pod is not None and container is not None and grace > 0:
        t0 = time.monotonic()
        try:
            msg = await asyncio.wait_for(run_handler(worker, container, container_id, handler, grace), grace)
        except TimeoutError:
            msg = None  # the grace period ran out in the hook: upstream just goes on
        if msg is not None:
            worker.container_event(name, "Warning", "FailedPreStopHook", msg)
        grace = max(grace - (time.monotonic() - t0), MIN_GRACE)
    if grace <= MIN_GRACE:
        await worker.agent.runtime.stop_container(container_id, grace)
        return
    sooner = asyncio.create_task(_stop_sooner(worker, container_id, time.monotonic() + grace))
    try:
        await worker.agent.runtime.stop_container(container_id, grace)
    finally:
        sooner.cancel()


async def _stop_sooner(worker: PodWorker, container_id: str, deadline: float) -> None:
    """While a container is given its grace period, a pod deleted again with a shorter
    one, or force-deleted (`kubectl delete --grace-period=0 --force`: the pod is gone
    from the API), is stopped sooner: the kubelet's grace period only ever decreases,
    and is at least 2 s for a container."""
    while True:
        await asyncio.sleep(0.2)
        pod = worker.pod
        if pod is None:
            grace = MIN_GRACE
        else:
            g = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
            if g is None:
                continue
            grace = max(float(g), MIN_GRACE)
        if time.monotonic() + grace < deadline - 0.5:
            await worker.agent.runtime.stop_container(container_id, grace)
            return
