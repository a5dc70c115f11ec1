"""The node agent (kybern's kubelet): registers a Node, keeps its heartbeat,
runs the pods bound to it through a runtime, and serves their logs.

    agent = NodeAgent(client, name="node-1", data_dir="/var/lib/kybern/node-1")
    await agent.run()          # until cancelled; stop() kills its containers

Pieces, each in its own module:
  node_status.py  the Node object and the Lease heartbeat
  pod_worker.py   one worker per pod: sync containers, write pod status
  containers.py   starting a container: images, env, back-offs, events
  status.py       phase / conditions / containerStatuses / QoS (pure)
  server.py       the HTTP endpoint for logs
  runtimes/       how containers actually run (`process` by default)
  kybern/network/podnet.py  the pod network: a netns + CNI bridge per pod
                  (`pod_network="auto"|"cni"|"host"`; see docs/networking.md)

It is an ordinary API client: pods come from an Informer watching
`spec.nodeName=<name>`; everything it reports goes through the API.

With the process runtime, containers do not outlive the agent: stop() stops
them, and an agent that crashed has its leftovers reaped at the next start
(pids are recorded in the data dir); pods still bound to the node then get
their containers back according to their restartPolicy. Everything an agent
keeps lives under its own data_dir, which it locks, so several agents can share
a machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import LEASES, NAMESPACES, NODES, PODS
from kybern.machinery import errors, meta
from kybern.network.noderoutes import NodeRoutes
from kybern.network.podnet import PodNetwork
from kybern.node import node_status as ns_
from kybern.node import volumes
from kybern.node.env import EnvResolver
from kybern.node.images import ImageStore
from kybern.node.kubelet_metrics import KubeletMetrics
from kybern.node.pod_worker import POD_UID_LABEL, PodWorker
from kybern.node.runtimes.base import RUNNING, ContainerStatus, Runtime
from kybern.node.runtimes.linux import LinuxRuntime
from kybern.node.runtimes.process import ProcessRuntime
from kybern.node.server import NodeServer
from kybern.node.staticpods import StaticPods, is_mirror
from kybern.node.sync_slots import SyncSlots

log = logging.getLogger(__name__)


# the kubelet's recordNodeStatusEvent reasons, by condition and status
_CONDITION_EVENTS = {("MemoryPressure", "False"): "NodeHasSufficientMemory",
                     ("MemoryPressure", "True"): "NodeHasInsufficientMemory",
                     ("DiskPressure", "False"): "NodeHasNoDiskPressure",
                     ("DiskPressure", "True"): "NodeHasDiskPressure",
                     ("PIDPressure", "False"): "NodeHasSufficientPID",
                     ("PIDPressure", "True"): "NodeHasInsufficientPID",
                     ("Ready", "True"): "NodeReady", ("Ready", "False"): "NodeNotReady"}


class NodeAgent:
    # knobs (class attributes so tests can shorten them)
    backoff_base = 10.0  # CrashLoopBackOff / ImagePullBackOff: 10s doubling ...
    backoff_max = 300.0  # ... to 5m, as upstream
    # Lease renewal; KYBERN_NODE_LEASE_INTERVAL shortens it for tests of node failure
    heartbeat_interval = float(os.environ.get("KYBERN_NODE_LEASE_INTERVAL") or 10.0)
    status_interval = 10.0  # Node status
    gc_interval = 60.0  # sandboxes of pods that are no longer ours
    shutdown_grace = 5.0  # SIGTERM -> SIGKILL when the agent itself stops

    def __init__(self, client: Client, *, name: str, data_dir: str | os.PathLike[str],
                 address: str = "127.0.0.1", port: int = 0, zone: str | None = None,
                 labels: dict[str, str] | None = None, token: str | None = None,
                 runtime: Runtime | str | None = None, pod_network: str = "auto",
                 max_pods: int = ns_.MAX_PODS, event_qps: float = 50.0, event_burst: int = 100,
                 pod_manifest_path: str | None = None) -> None:
        self.client = client
        self.name = name
        self.data_dir = os.fspath(data_dir)
        self.memory_dir = volumes.memory_dir(self.data_dir)  # in-memory volumes (volumes.py)
        self.metrics = KubeletMetrics()  # its own /metrics (kubelet_metrics.py)
        self.address = address
        self.port = port
        self.zone = zone
        self.labels = ns_.node_labels(name, zone, labels)
        self.token = token
        self.max_pods = max_pods  # the kubelet's --max-pods: advertised, and enforced at admission
        self._rejected: set[str] = set()  # UIDs of pods refused at admission (OutOfpods)
        self.images = ImageStore(self.data_dir)
        own = None if isinstance(runtime, str) else runtime  # "linux" is built here, as the default
        self.network = PodNetwork(self.data_dir, name, pod_network if own is None else "host")
        self.runtime: Runtime = own or (LinuxRuntime if runtime == "linux" else ProcessRuntime)(
            self.data_dir, self.images, host_ip=address, network=self.network, node_name=name)
        self.sync_slots = SyncSlots()  # pods sync a few at a time, in order (sync_slots.py)
        # the kubelet's eventRecordQPS and eventBurst (defaults 50 and 100): events beyond them
        # wait; so does every event while pods wait for a sync slot (at most 2 s): their starts first
        self.event_qps, self.event_burst = event_qps, event_burst
        # the kubelet's staticPodPath: pods from files, through mirror pods (staticpods.py)
        self.pod_manifest_path = pod_manifest_path
        self.static_pods = StaticPods(self, pod_manifest_path) if pod_manifest_path else None
        self.recorder = EventRecorder(client, "kubelet", name, qps=event_qps, burst=event_burst,
                                      yield_to=self.sync_slots.backlog)
        self.env = EnvResolver(client)
        self.server = NodeServer(self, address, port)
        self.informer = Informer(client, PODS, field_selector=f"spec.nodeName={name}")
        self.workers: dict[str, PodWorker] = {}  # by pod UID
        self.ready = asyncio.Event()  # registered and serving
        self.node_uid: str | None = None
        self._node_status: dict[str, Any] | None = None
        self._lease: dict[str, Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock_fd: int | None = None
        self._started = False
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled; always cleans up (containers are stopped)."""
        try:
            await self.start()
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.stop())

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        os.makedirs(self.data_dir, exist_ok=True)
        self._lock()
        self._forget_memory_volumes()  # a killed agent's
        if self.memory_dir is not None:
            await asyncio.to_thread(volumes.claim_memory_dir, self.memory_dir, self.data_dir)
        await self.network.setup(*await self._node_pod_cidrs())
        await self.runtime.start()
        self.runtime.add_event_handler(self._on_container_event)
        self.port = await self.server.start()
        _cap, alloc = ns_.capacity(self.data_dir, self.max_pods)
        self.env.node_allocatable = alloc
        self.env.start()
        await self._register()
        self.informer.add_handler(self._on_pod)
        self.informer.start()
        self._tasks = [
            asyncio.create_task(self._every(self.heartbeat_interval, self._renew_lease, first_delay=True),
                                name="node-lease"),
            asyncio.create_task(self._every(self.status_interval, self._post_status, first_delay=True),
                                name="node-status"),
            asyncio.create_task(self._gc_loop(), name="node-gc"),
        ]
        if self.static_pods is not None:
            self._tasks.append(asyncio.create_task(self.static_pods.run(), name="static-pods"))
        if self.network.mode == "cni":  # the pods of nodes on other machines, through their hosts
            self._tasks.append(asyncio.create_task(self._node_routes(), name="node-routes"))
        self.ready.set()
        log.info("node %s ready (logs on %s:%d)", self.name, self.address, self.port)

    async def stop(self) -> None:
        """Stop watching, stop every container, close the server. The Node is
        left as it is; without heartbeats it goes NotReady."""
        if self._stopped:
            return
        self._stopped = True
        for t in self._tasks:
            t.cancel()
        await self.informer.stop()
        await self.env.stop()
        workers = list(self.workers.values())
        for w in workers:
            if w.task is not None:
                w.task.cancel()
        await asyncio.gather(*(w.task for w in workers if w.task is not None), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runtime.shutdown(self.shutdown_grace)
        await self.network.shutdown()
        await self.server.stop()
        self._forget_memory_volumes()
        self._unlock()

    def _forget_memory_volumes(self) -> None:
        """The in-memory volumes of every pod (their containers are gone: stopped
        here, or killed with the previous agent; a pod still bound here gets its
        files again at its first sync)."""
        if self.memory_dir is not None:
            shutil.rmtree(self.memory_dir, ignore_errors=True)

    def _lock(self) -> None:
        fd = os.open(os.path.join(self.data_dir, "agent.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RuntimeError(f"another node agent is already using data dir {self.data_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- pods -----------------------------------------------------------------
    def _on_pod(self, event: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        uid = new["metadata"].get("uid", "")
        w = self.workers.get(uid)
        if event == "DELETED":
            self._rejected.discard(uid)
            if w is not None:
                w.update(None)
            if self.static_pods is not None and is_mirror(new):
                self.static_pods.mirror_deleted()  # made again at once, as the kubelet does
            return
        if self._stopped:
            return
        if w is None:
            if not self._admit(new):
                return
            w = PodWorker(self, new)
            self.workers[uid] = w
            w.start()
        else:
            w.update(new)

    def _admit(self, pod: dict[str, Any]) -> bool:
        """The kubelet's admission, for the pod count only: a pod that would
        make more than max_pods active pods on this node fails with OutOfpods
        (the scheduler normally never sends one; a pod bound by spec.nodeName can)."""
        uid = pod["metadata"].get("uid", "")
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") or meta.is_deleting(pod):
            return True  # nothing will run: the worker only reports and finalizes
        if uid in self._rejected:
            return False  # our Failed status is on its way
        if len(self.workers) < self.max_pods:
            return True  # room whatever the workers' states (a sum over them per new pod is O(n²))
        used = sum(1 for w in self.workers.values() if w.active)
        if used < self.max_pods:
            return True
        self._rejected.add(uid)
        msg = (f"Node didn't have enough resource: pods, requested: 1, used: {used}, "
               f"capacity: {self.max_pods}")
        self.recorder.event(pod, "Warning", "OutOfpods", msg)
        status = {"phase": "Failed", "reason": "OutOfpods", "message": msg}
        asyncio.create_task(self._reject(pod, status), name=f"reject-{uid}")
        return False

    async def _reject(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        m = pod["metadata"]
        try:
            await self.client.patch(PODS, m["name"], {"status": status}, m.get("namespace", "default"),
                                    subresource="status")
        except errors.StatusError as e:
            log.warning("cannot reject pod %s/%s: %s", m.get("namespace"), m["name"], e)
            self._rejected.discard(m.get("uid", ""))

    def _on_container_event(self, cs: ContainerStatus) -> None:
        if cs.state == RUNNING:
            self.metrics.container_started()
        w = self.workers.get(cs.labels.get(POD_UID_LABEL, ""))
        if w is not None:
            w.container_changed(cs.state)

    def worker_finished(self, w: PodWorker) -> None:
        if self.workers.get(w.uid) is w:
            del self.workers[w.uid]

    def worker_for(self, namespace: str, name: str) -> PodWorker | None:
        """The live worker of pod namespace/name (the newest if it was recreated)."""
        found = [w for w in self.workers.values() if w.namespace == namespace and w.name == name]
        live = [w for w in found if w.pod is not None] or found
        return live[-1] if live else None

    async def _gc_loop(self) -> None:
        """Remove sandboxes whose pod is no longer bound here (deleted while the
        agent was down, or rebound)."""
        await self.informer.wait_synced()
        while True:
            try:
                for sb in await self.runtime.list_pod_sandboxes():
                    if sb.uid not in self.workers:
                        log.info("removing sandbox of pod %s/%s: no longer on this node", sb.namespace, sb.name)
                        await self.runtime.stop_pod_sandbox(sb.id)
                        await self.runtime.remove_pod_sandbox(sb.id)
                        await asyncio.to_thread(shutil.rmtree, os.path.join(
                            self.data_dir, "pods", f"{sb.namespace}_{sb.name}_{sb.uid}"), True)
                if self.memory_dir is not None and self.memory_dir.is_dir():  # in-memory volumes likewise
                    for d in self.memory_dir.iterdir():
                        if d.name not in self.workers and not d.name.startswith("."):
                            await asyncio.to_thread(shutil.rmtree, d, True)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 -- the loop must outlive one bad pass
                log.warning("node gc failed: %r", e)
            await asyncio.sleep(self.gc_interval)

    # -- the Node and its heartbeat ---------------------------------------------
    def _status(self) -> dict[str, Any]:
        images = self.images.list()
        return ns_.node_status(name=self.name, address=self.address, port=self.port, data_dir=self.data_dir,
                               runtime_version=f"{self.runtime.name}://kybern", images=images,
                               old=self._node_status, max_pods=self.max_pods)

    async def _node_routes(self) -> None:
        while True:  # a crash is logged and the routes are synced again from scratch
            try:
                await NodeRoutes(self.client, self.name, self.network.pod_cidr).run()
                return
            except Exception:  # noqa: BLE001
                log.exception("node routes failed; restarting in 5 s")
                await asyncio.sleep(5)

    async def _node_pod_cidrs(self) -> tuple[str | None, set[str]]:
        """The podCIDR our Node already has (the pod network keeps it if it can) and
        those of the cluster's other Nodes, perhaps on other machines (never taken)."""
        if self.network.requested == "host":
            return None, set()
        try:
            nodes = (await self.client.list(NODES))["items"]
        except errors.StatusError:
            return None, set()
        own = next(((n.get("spec") or {}).get("podCIDR") for n in nodes if n["metadata"]["name"] == self.name), None)
        return own, {c for n in nodes if n["metadata"]["name"] != self.name
                     for c in [(n.get("spec") or {}).get("podCIDR")] if c}

    def _network_spec(self) -> dict[str, Any]:
        cidr = self.network.pod_cidr
        return {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}

    async def _register(self) -> None:
        try:
            existing: dict[str, Any] | None = await self.client.get(NODES, self.name)
        except errors.StatusError as e:
            if e.code != 404:
                raise
            existing = None
        if existing is not None:  # re-registering: keep condition transition times
            self._node_status = existing.get("status")
        status = await asyncio.to_thread(self._status)
        if existing is None:
            try:
                obj = ns_.node_object(name=self.name, labels=self.labels, status=status)
                obj["spec"].update(self._network_spec())
                node = await self.client.create(NODES, obj)
            except errors.StatusError as e:
                if e.code != 409:
                    raise
                existing = {}
        if existing is not None:
            body: dict[str, Any] = {"metadata": {"labels": self.labels}}
            if self._network_spec():
                body["spec"] = self._network_spec()
            node = await self.client.patch(NODES, self.name, body)
        self.node_uid = node["metadata"].get("uid")
        if self.network.fallback_reason:  # said once, where `kubectl describe node` shows it
            self.recorder.event({"apiVersion": "v1", "kind": "Node",
                                 "metadata": {"name": self.name, "uid": self.name}}, "Warning",
                                "HostNetworkPods", f"pods use the host's network: {self.network.fallback_reason}")
        self._node_status = (await self.client.patch(NODES, self.name, {"status": status},
                                                     subresource="status")).get("status", status)
        self._record_start_events(self._node_status or {})
        await self._renew_lease()

    def _record_start_events(self, status: dict[str, Any]) -> None:
        """What a starting kubelet records on its Node (`kubectl describe node`): Starting,
        then each condition's status; the node is referred to by name as its uid, as
        the kubelet does."""
        ref = {"kind": "Node", "metadata": {"name": self.name, "uid": self.name}}
        self.recorder.event(ref, "Normal", "Starting", "Starting kubelet.")
        for c in status.get("conditions") or []:
            reason = _CONDITION_EVENTS.get((c.get("type"), c.get("status")))
            if reason:
                self.recorder.event(ref, "Normal", reason, f"Node {self.name} status is now: {reason}")

    async def _post_status(self) -> None:
        # the Node as it is now, as the kubelet reads it before each status update: what
        # others wrote since (an operator's extended resources in capacity) is seen at once
        try:
            self._node_status = (await self.client.request(
                "GET", NODES.object_path(self.name), params={"resourceVersion": "0"})).get("status")
        except errors.StatusError as e:
            if e.code != 404:
                raise
        status = await asyncio.to_thread(self._status)
        node = await self.client.patch(NODES, self.name, {"status": status}, subresource="status")
        self._node_status = node.get("status", status)

    async def _renew_lease(self) -> None:
        lease = self._lease
        if lease is not None:
            lease["spec"].update(holderIdentity=self.name, leaseDurationSeconds=ns_.LEASE_DURATION_SECONDS,
                                 renewTime=meta.now_micro())
            try:
                self._lease = await self.client.update(LEASES, lease)
                return
            except errors.StatusError as e:
                if e.code not in (404, 409):
                    raise
                self._lease = None
        try:
            current = await self.client.get(LEASES, self.name, ns_.LEASE_NAMESPACE)
        except errors.StatusError as e:
            if e.code != 404:
                raise
            self._lease = await self._create_lease()
            return
        current["spec"].update(holderIdentity=self.name, leaseDurationSeconds=ns_.LEASE_DURATION_SECONDS,
                               renewTime=meta.now_micro())
        self._lease = await self.client.update(LEASES, current)

    async def _create_lease(self) -> dict[str, Any]:
        obj = ns_.lease_object(self.name, self.node_uid)
        try:
            return await self.client.create(LEASES, obj, ns_.LEASE_NAMESPACE)
        except errors.StatusError as e:
            if e.code != 404:  # 404: the namespace does not exist yet
                raise
        with contextlib.suppress(errors.StatusError):
            await self.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": ns_.LEASE_NAMESPACE}})
        return await self.client.create(LEASES, ns_.lease_object(self.name, self.node_uid),
                                        ns_.LEASE_NAMESPACE)

    async def _every(self, interval: float, fn: Any, *, first_delay: bool = False) -> None:
        if first_delay:
            await asyncio.sleep(interval)
        while True:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 -- retried next interval
                log.warning("node %s: %s failed: %r", self.name, getattr(fn, "__name__", fn), e)
            await asyncio.sleep(interval)
