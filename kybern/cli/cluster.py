"""Running the parts of a cluster in one process: the apiserver (`kybern server`)
and, for `kybern up`, the scheduler, controllers and a node agent beside it.

Each component gets its own API client over HTTPS, exactly as if it ran
elsewhere (DESIGN.md: every component is an API client).
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from kybern.cli import apiworkers, children, gc_tuning
from kybern.client.http import Client, wait_ready
from kybern.client.resources import NODES
from kybern.machinery import errors

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("kybern")


class DataDirBusy(Exception):
    pass


@dataclass
class ClusterConfig:
    data_dir: Path
    address: str = "127.0.0.1"
    port: int = 6443
    datastore: str = ""
    node_name: str = ""
    zone: str | None = None
    run_node: bool = True
    # the built-in node's agent in its own process, as a kubelet (False: inside this one)
    agent_process: bool = True
    verbose: int = 0
    run_controllers: bool = True
    run_scheduler: bool = True  # False: run `kybern scheduler` as its own process (docs/scheduler.md)
    # the scheduler and controllers hold Leases in kube-system while they work, so several
    # servers on one etcd run one of each (None: on with etcd, where several servers may run)
    leader_elect: bool | None = None
    leader_timing: tuple[float, float, float] = (15.0, 10.0, 2.0)  # lease duration, renew deadline, retry period
    pod_manifest_path: Path | None = None  # the built-in node's static pods (the kubelet's staticPodPath)
    labels: dict[str, str] = field(default_factory=dict)
    pod_network: str = "auto"  # auto | cni | host (docs/networking.md)
    max_pods: int = 110  # the node's pod capacity (the kubelet's --max-pods; docs/node.md)
    runtime: str = "process"  # process | fake (hollow node: no containers run, no service proxy)
    proxy_mode: str = "auto"  # auto | nftables | iptables | userspace
    # the ingress controller (docs/ingress.md): None ports mean 80/443 as root, else 8080/8443
    run_ingress: bool = True
    ingress_http_port: int | None = None
    ingress_https_port: int | None = None
    ingress_plane: str = "auto"
    # cluster DNS (docs/dns.md): falls back to a free port if dns_port is taken
    run_dns: bool = True
    dns_address: str = "127.0.0.1"
    dns_port: int = 1053
    # apiserver processes sharing the listening socket (docs/apiserver.md, apiworkers.py)
    api_workers: int = 1
    # kube-apiserver's --admission-control-config-file: PodSecurity defaults/exemptions (docs/security.md)
    admission_config: Path | None = None
    # kube-apiserver's --authorization-mode (docs/rbac.md)
    authorization_mode: str = "Node,RBAC"
    # kube-apiserver's --anonymous-auth (docs/rbac.md)
    anonymous_auth: bool = True
    # kube-apiserver's --audit-* flags (docs/apiserver.md, Auditing); None: no auditing
    audit: Any = None


def lock_data_dir(data_dir: Path) -> int:
    """An exclusive lock on the data dir, so a second server cannot corrupt it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "kybern.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DataDirBusy(f"the data dir {data_dir} is in use by another kybern (pid {pid}). Stop it first "
                          f"(Ctrl-C in its terminal, or `kill {pid}`), or pass --data-dir to start a "
                          f"separate cluster.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


async def supervise(name: str, run: Callable[[], Awaitable[Any]], health: Any = None) -> None:
    """Run a component; if it crashes, log why and start it again (with backoff),
    as a kubelet restarts a crashed static pod — one bad component must not take
    the cluster down. `health` (componentstatus.Health) follows whether it runs."""
    delay = 0.5
    while True:
        started = asyncio.get_running_loop().time()
        if health is not None:
            health.started()
        try:
            await run()
            log.warning("%s exited; restarting", name)
            why = f"{name} exited; restarting"
        except asyncio.CancelledError:
            if health is not None:
                health.stopped(f"{name} stopped")
            raise
        except Exception as e:
            log.exception("%s crashed; restarting in %.1fs", name, delay)
            why = f"{name} crashed: {e!r}; restarting"
        if health is not None:
            health.stopped(why)
        if asyncio.get_running_loop().time() - started > 60:
            delay = 0.5
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30)


@dataclass
class Running:
    server_url: str
    ca_file: Path
    admin_token: str
    node_token: str
    port: int
    tasks: list[asyncio.Task[Any]]
    runner: web.AppRunner
    stoppers: list[Callable[[], Awaitable[None]]]
    clients: list[Client] = field(default_factory=list)
    store: Any = None


async def start(cfg: ClusterConfig, *, on_ready: Callable[[Running], None] | None = None) -> Running:
    # imported here: `kybern agent` uses this module too, and has no use for the apiserver (~10 MB)
    from aiohttp import web

    from kybern.apiserver import pki
    from kybern.apiserver.componentstatus import Health
    from kybern.apiserver.server import APIServer, ssl_context
    from kybern.storage.compactor import run_compactor
    from kybern.storage.registry import open_store

    data = cfg.data_dir
    admin_token = pki.ensure_token(data / "admin.token")
    node_token = pki.ensure_token(data / "node.token")
    crt, key = pki.ensure_serving_cert(data / "pki", [cfg.address])
    kubelet_crt, kubelet_key = pki.ensure_kubelet_client_cert(data / "pki")  # before any API worker starts
    ca_file = data / "pki" / "ca.crt"
    datastore = cfg.datastore or f"sqlite://{data / 'state.db'}"
    store = open_store(datastore)
    host = "127.0.0.1" if cfg.address in ("0.0.0.0", "::") else cfg.address
    api = APIServer(store, tokens={admin_token, node_token}, node_token=node_token,
                    authorization_modes=cfg.authorization_mode, anonymous_auth=cfg.anonymous_auth,
                    advertise=f"{host}:{cfg.port}")
    api.auditor = cfg.audit.auditor() if cfg.audit is not None else None
    if cfg.admission_config is not None:
        from kybern.apiserver import podsecurity

        api.pod_security.configure(podsecurity.load_config(cfg.admission_config))
    await api.bootstrap()
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False,
                               shutdown_timeout=apiworkers.SHUTDOWN_GRACE)
    await runner.setup()  # the watch cache fills from storage here
    try:
        sock = apiworkers.listen(cfg.address, cfg.port, shared=cfg.api_workers > 1)
    except OSError as e:
        await runner.cleanup()
        raise SystemExit(f"kybern: cannot listen on {cfg.address}:{cfg.port}: {e.strerror}. "
                         f"Is another cluster running? Pick another port with --port.") from None
    port = sock.getsockname()[1]
    url = f"https://{host}:{port}"
    api.advertise = f"{host}:{port}"
    from kybern.apiserver import master_endpoints

    await master_endpoints.reconcile(api, host, port)  # where 10.96.0.1:443 leads (start-up writes end here)
    gc_tuning.freeze_for_serving()  # before any connection: shorter GC pauses (gc_tuning.py)
    api.client_ca = True
    api.kubelet_client = (str(kubelet_crt), str(kubelet_key))
    await web.SockSite(runner, sock, ssl_context=ssl_context(str(crt), str(key), str(ca_file))).start()
    running = Running(url, ca_file, admin_token, node_token, port, [], runner, [], store=store)
    # as kube-apiserver: compact the storage history every 5 minutes (cancelled by stop())
    running.tasks.append(asyncio.create_task(run_compactor(store), name="compactor"))
    running.tasks.append(asyncio.create_task(master_endpoints.run(api, host, port), name="kubernetes-service"))
    running.tasks.append(asyncio.create_task(api.keep_system_namespaces(), name="system-namespaces"))
    if cfg.api_workers > 1:
        apiworkers.share_store(store)
        for i in range(1, cfg.api_workers):
            running.tasks.append(asyncio.create_task(
                apiworkers.worker(i, cfg.address, port, data, datastore, cfg.admission_config,
                                  cfg.authorization_mode, cfg.audit, cfg.anonymous_auth).run(),
                name=f"apiserver-worker-{i}"))

    def client(agent: str) -> Client:
        c = Client(url, token=admin_token, ca_file=str(ca_file), user_agent=agent)
        running.clients.append(c)
        return c

    probe = client("kybern/probe")
    await wait_ready(probe)
    await probe.close()
    if cfg.run_controllers:
        from kybern.client.informer_factory import InformerFactory
        from kybern.controllers import manager
        from kybern.scheduler import scheduler

        # one list+watch per resource for the controllers and the scheduler of this process,
        # as client-go's SharedInformerFactory (kybern/client/informer_factory.py)
        shared = InformerFactory(client("kube-controller-manager/v1.32.0 (kybern) informers"))
        running.tasks.append(asyncio.create_task(_hold_informers(shared), name="shared-informers"))
        from kybern.client.leaderelection import LeaderElector

        elect = cfg.leader_elect if cfg.leader_elect is not None else cfg.datastore.startswith("etcd")

        def elector(lease: str) -> LeaderElector:
            return LeaderElector(client(f"{lease}/v1.32.0 (kybern) leader-election"), lease,
                                 lease_duration=cfg.leader_timing[0], renew_deadline=cfg.leader_timing[1],
                                 retry_period=cfg.leader_timing[2])

        def elected(lease: str, work: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
            """`work`, under leader election for the Lease `lease` when `elect`."""
            if not elect:
                return work
            return lambda: elector(lease).run(work)

        api.components["controller-manager"] = Health()  # what `kubectl get cs` reports
        running.tasks.append(asyncio.create_task(
            supervise("controller-manager", elected("kube-controller-manager", lambda: manager.run_controllers(
                client("kube-controller-manager/v1.32.0 (kybern)"), informers=shared)),
                api.components["controller-manager"]),
            name="controllers"))
        if cfg.run_scheduler:
            api.components["scheduler"] = Health()
            running.tasks.append(asyncio.create_task(
                supervise("scheduler", elected("kube-scheduler", lambda: scheduler.run_scheduler(
                    client("kube-scheduler/v1.32.0 (kybern)"), informers=shared)), api.components["scheduler"]),
                name="scheduler"))
        from kybern.network.servicelb import ServiceLB

        running.tasks.append(asyncio.create_task(
            supervise("servicelb", elected("cloud-controller-manager", lambda: ServiceLB(
                client("service-controller/v1.32.0 (kybern)"), informers=shared).run())),
            name="servicelb"))
    if cfg.run_controllers and cfg.run_ingress:
        from kybern.network import ingress

        http_port, https_port = ingress.default_ports()
        ingress_ctl = ingress.IngressController(
            client("nginx-ingress-controller/v1.32.0 (kybern)"), data_dir=data / "ingress",
            http_port=cfg.ingress_http_port or http_port, https_port=cfg.ingress_https_port or https_port,
            publish_address=host, listen_address="" if cfg.address in ("0.0.0.0", "::") else cfg.address,
            plane=cfg.ingress_plane, informers=shared, elector=elector("ingress-nginx-leader") if elect else None)
        running.tasks.append(asyncio.create_task(supervise("ingress-controller", ingress_ctl.run),
                                                 name="ingress-controller"))
    gateway: Callable[[], Awaitable[str | None]] | None = None
    if cfg.run_node and cfg.agent_process:
        agent_child = node_agent_child(cfg, url, node_token, ca_file, host)
        running.tasks.append(asyncio.create_task(agent_child.run(), name="node-agent"))
        running.stoppers.append(agent_child.stop)
        if cfg.pod_network != "host":  # only a CNI pod network has a bridge to serve DNS on
            gateway = node_gateway_from_api(client("coredns/v1.32.0 (kybern)"), cfg.node_name)
    elif cfg.run_node:
        from kybern.node.agent import NodeAgent

        agent = NodeAgent(client("kubelet/v1.32.0 (kybern)"), name=cfg.node_name or socket.gethostname().lower(),
                          data_dir=str(data / "node"), address=host, zone=cfg.zone,
                          labels=cfg.labels or None, token=node_token, pod_network=cfg.pod_network,
                          max_pods=cfg.max_pods, runtime=node_runtime(cfg.runtime, host),
                          pod_manifest_path=str(cfg.pod_manifest_path) if cfg.pod_manifest_path else None)
        running.tasks.append(asyncio.create_task(agent.run(), name="node-agent"))
        running.stoppers.append(agent.stop)
        if cfg.runtime != "fake":  # a hollow node's pods have nothing to forward to
            running.tasks.append(asyncio.create_task(supervise("service-proxy", proxy_runner(
                lambda: client("kube-proxy/v1.32.0 (kybern)"), str(data / "node"), cfg.proxy_mode, host, agent.name)),
                name="service-proxy"))
            running.tasks.append(asyncio.create_task(supervise("network-policy", netpol_runner(
                lambda: client(NETPOL_AGENT), str(data / "node"), agent)), name="network-policy"))
        network = agent.network

        async def gateway_in_process() -> str | None:
            return network.gateway if network.mode == "cni" else None
        gateway = gateway_in_process
    if cfg.run_controllers and cfg.run_dns:
        running.tasks.append(asyncio.create_task(supervise("cluster-dns", dns_runner(
            lambda: client("coredns/v1.32.0 (kybern)"), cfg, host, gateway, shared)),
            name="cluster-dns"))
    if on_ready:
        on_ready(running)
    return running


async def _hold_informers(factory: Any) -> None:
    """Keeps the shared informers until the cluster stops, then stops them."""
    try:
        await asyncio.Event().wait()
    finally:
        await factory.stop()


def node_runtime(kind: str, host_ip: str) -> Any:
    """The runtime a node agent gets for `--runtime`: None is the agent's default
    (process); "linux" the agent builds as it builds that one (runtimes/linux.py);
    fake is kybern/node/runtimes/fake.py."""
    if kind == "fake":
        from kybern.node.runtimes.fake import FakeRuntime

        return FakeRuntime(host_ip=host_ip)
    return "linux" if kind == "linux" else None


def proxy_runner(make_client: Callable[[], Client], instance: str, mode: str,
                 address: str, node_name: str | None = None) -> Callable[[], Awaitable[None]]:
    """The service proxy beside a node agent (a fresh one per restart by supervise)."""
    async def run() -> None:
        from kybern.network.proxy import ServiceProxy

        await ServiceProxy(make_client(), instance=instance, mode=mode, node_address=address,
                           pod_cidr_file=os.path.join(instance, "network", "state.json"), node_name=node_name).run()
    return run


NETPOL_AGENT = "kybern-network-policy/v1.32.0 (kybern)"


def netpol_runner(make_client: Callable[[], Client], instance: str, agent: Any) -> Callable[[], Awaitable[None]]:
    """The NetworkPolicy enforcer beside a node agent (kybern/network/netpol.py), for
    the pods of `agent`'s CNI pod network (a fresh one per restart by supervise)."""
    async def pod_network() -> tuple[str, str | None]:
        await agent.ready.wait()
        return agent.network.mode, agent.network.pod_cidr

    async def run() -> None:
        from kybern.network.netpol import PolicyEnforcer

        await PolicyEnforcer(make_client(), instance=instance, node_name=agent.name, pod_network=pod_network).run()
    return run


def node_agent_child(cfg: ClusterConfig, url: str, token: str, ca_file: Path, host: str) -> children.Child:
    """`kybern agent` for the built-in node, with `kybern up`'s node flags. In its
    own process the agent's pod starts do not queue behind the apiserver's
    requests on one core (docs/node.md)."""
    args = ["agent", "--server", url, "--token", token, "--ca-file", str(ca_file), "--name", cfg.node_name,
            "--address", host, "--data-dir", str(cfg.data_dir / "node"), "--pod-network", cfg.pod_network,
            "--max-pods", str(cfg.max_pods), "--runtime", cfg.runtime, "--proxy-mode", cfg.proxy_mode,
            *(["--zone", cfg.zone] if cfg.zone else []), *(["-" + "v" * cfg.verbose] if cfg.verbose else []),
            *(["--pod-manifest-path", str(cfg.pod_manifest_path)] if cfg.pod_manifest_path else [])]
    for k, v in cfg.labels.items():
        args += ["--label", f"{k}={v}"]
    # the agent stops its pods (grace periods up to 30 s) before the apiserver goes away
    return children.Child("node agent", args, stop_timeout=45, own_session=True)


def node_gateway_from_api(client: Client, node: str) -> Callable[[], Awaitable[str | None]]:
    """The pod bridge's gateway of a node whose agent runs elsewhere: the first
    address of the podCIDR its agent published (only a CNI pod network has one)."""
    async def gateway() -> str | None:
        try:
            cidr = ((await client.get(NODES, node)).get("spec") or {}).get("podCIDR")
        except (errors.StatusError, OSError, aiohttp.ClientError):
            return None
        return str(ipaddress.ip_network(cidr).network_address + 1) if cidr else None
    return gateway


def dns_runner(make_client: Callable[[], Client], cfg: ClusterConfig, host: str,
               gateway: Callable[[], Awaitable[str | None]] | None,
               informers: Any = None) -> Callable[[], Awaitable[None]]:
    """The cluster DNS (a fresh one per restart by supervise); with a node whose pods
    have a bridge, also served on the bridge's gateway so pods can reach it."""
    async def run() -> None:
        from kybern.network.dns import serve_cluster_dns

        advertise = host if cfg.dns_address in ("0.0.0.0", "::") else None
        await serve_cluster_dns(make_client(), address=cfg.dns_address, port=cfg.dns_port, advertise=advertise,
                                node_gateway=gateway, informers=informers)
    return run


async def stop(running: Running) -> None:
    for s in running.stoppers:
        try:
            await asyncio.wait_for(s(), 40)
        except Exception as e:  # noqa: BLE001 - shutting down regardless
            log.warning("stopping: %r", e)
    for t in running.tasks:
        t.cancel()
    await asyncio.gather(*running.tasks, return_exceptions=True)
    for c in running.clients:
        await c.close()
    await running.runner.cleanup()
    if running.store is not None:
        await running.store.close()


async def serve_forever(cfg: ClusterConfig, on_ready: Callable[[Running], None] | None = None) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    running = await start(cfg, on_ready=on_ready)
    try:
        waiter = asyncio.create_task(done.wait())
        await asyncio.wait([waiter, *running.tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in running.tasks:
            if t.done() and not t.cancelled() and t.exception():
                log.error("component %s failed: %r", t.get_name(), t.exception())
    finally:
        await stop(running)
