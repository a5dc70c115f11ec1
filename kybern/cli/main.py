"""The `kybern` command: up, server, agent, image."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import click

from kybern.cli import cluster, kubeconfig, serverloop, tokens

REGION_LABEL = "topology.kubernetes.io/region"
DEFAULT_DATA = Path(os.environ.get("KYBERN_DATA_DIR", str(Path.home() / ".kybern")))
# pod network and service proxy of node agents (docs/networking.md); the environment sets the defaults
POD_NETWORK_OPT = {"default": os.environ.get("KYBERN_POD_NETWORK", "auto"), "show_default": True,
                   "help": "Pods get their own netns and IP through CNI (cni; needs root and "
                           "containernetworking-plugins), share the host's network (host), or cni when "
                           "possible (auto). Default from $KYBERN_POD_NETWORK."}
PROXY_MODE_OPT = {"default": os.environ.get("KYBERN_PROXY_MODE", "auto"), "show_default": True,
                  "help": "How Service addresses reach endpoints: kernel rules (nftables, iptables; root) or a "
                          "userspace forwarder on loopback; auto picks the first that works. "
                          "Default from $KYBERN_PROXY_MODE."}
MAX_PODS_OPT = {"type": click.IntRange(1, 10000), "default": 110, "show_default": True,
                "help": "Pods this node runs at most (the kubelet's --max-pods): its `pods` capacity; "
                        "more are refused with OutOfpods."}
LEADER_ELECT_OPT: dict = {"default": None, "help": "Run the scheduler and controllers under leader election (Leases "
                          "in kube-system), so several servers on one store run one of each. Default: on with "
                          "an etcd datastore, off with SQLite (one server per file). docs/scheduler.md."}


def leader_elect_timing(f: Any) -> Any:
    """kube-scheduler's and kube-controller-manager's --leader-elect-lease-duration,
    -renew-deadline and -retry-period (seconds; client-go's checks apply)."""
    for flag, default in (("retry-period", 2.0), ("renew-deadline", 10.0), ("lease-duration", 15.0)):
        f = click.option(f"--leader-elect-{flag}", type=float, default=default, show_default=True,
                         help="Seconds (leader election; docs/scheduler.md).")(f)
    return f


def audit_flags(f: Any) -> Any:
    """kube-apiserver's audit log flags (docs/apiserver.md, Auditing)."""
    for flag, kind, helptext in (
            ("maxsize", int, "Megabytes an audit log file grows to before it is rotated (0: never)."),
            ("maxbackup", int, "Rotated audit log files kept (0: all)."),
            ("maxage", int, "Days a rotated audit log file is kept (0: forever)."),
            ("path", str, "Write audit events here as JSON lines ('-': stdout); needs --audit-policy-file.")):
        f = click.option(f"--audit-log-{flag}", type=kind, default=0 if kind is int else "", help=helptext)(f)
    return click.option("--audit-policy-file", type=click.Path(exists=True, dir_okay=False), default=None,
                        help="An audit.k8s.io/v1 Policy: which requests are logged, at what level.")(f)


def _audit(policy_file: str | None, log_path: str, maxage: int, maxbackup: int, maxsize: int) -> Any:
    """The flags, with the policy checked before anything starts, as kube-apiserver does."""
    from kybern.apiserver.audit import AuditFlags, PolicyError, load_policy

    flags = AuditFlags(policy_file or "", log_path, maxage, maxbackup, maxsize)
    if flags.enabled:
        try:
            load_policy(policy_file)
        except PolicyError as e:
            raise click.BadParameter(str(e), param_hint="--audit-policy-file") from None
    return flags


def _leader_timing(lease_duration: float, renew_deadline: float, retry_period: float) -> tuple[float, float, float]:
    from kybern.client.leaderelection import LeaderElector

    try:
        LeaderElector.check_timing(lease_duration, renew_deadline, retry_period)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return lease_duration, renew_deadline, retry_period


MANIFEST_PATH_OPT: dict = {"type": click.Path(file_okay=False, path_type=Path), "default": None,
                            "help": "Run the pods whose manifests are in this directory as static pods, as the "
                                    "kubelet's --pod-manifest-path (mirror pods NAME-NODE; docs/node.md)."}


RUNTIME_OPT = {"type": click.Choice(["process", "linux", "fake"]), "default": "process", "show_default": True,
               "help": "How containers run: host processes (process), in their image's root filesystem with "
                       "namespaces through crun (linux; root only), or not at all (fake: hollow nodes for "
                       "scale tests, no service proxy; docs/node.md)."}


def _check_runtime(runtime: str) -> None:
    if runtime == "linux":
        from kybern.node.runtimes.linux import problem

        if (why := problem()) is not None:
            raise click.UsageError(why)


def _logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


ANONYMOUS_AUTH_OPT: dict = {
    "type": click.BOOL, "default": True, "show_default": True,
    "help": "kube-apiserver's --anonymous-auth: a request with no credentials is user system:anonymous (group "
            "system:unauthenticated), which RBAC authorizes; false: it is 401 Unauthorized (docs/rbac.md)."}


def _authorization_mode(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--authorization-mode checked before anything starts, as kube-apiserver does."""
    from kybern.apiserver import authz

    try:
        return ",".join(authz.parse_modes(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.group()
@click.version_option(package_name="kybern")
def main() -> None:
    """kybern: a Kubernetes-compatible cluster in one Python package."""
    from kybern.cli.childwatch import use_pidfd_child_watcher

    use_pidfd_child_watcher()  # no thread per container, CNI plugin or helper process


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="Where the cluster keeps its state (one SQLite file, certificates, node data).")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address the API listens on.")
@click.option("--port", type=int, default=6443, show_default=True, help="API port (0 picks a free one).")
@click.option("--kubeconfig", "kubeconfig_path", type=click.Path(path_type=Path),
              default=lambda: os.environ.get("KUBECONFIG", "").split(":")[0] or str(Path.home() / ".kube/config"),
              help="Kubeconfig to merge the `kybern` context into.  [default: ~/.kube/config]")
@click.option("--datastore", default="", help="sqlite:///PATH (default: DATA_DIR/state.db) or etcd://HOST:PORT.")
@click.option("--api-workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="apiserver processes sharing the API port (docs/apiserver.md); more use more cores.")
@click.option("--node-name", default="", help="Name of the built-in node (default: the hostname).")
@click.option("--zone", default=None, help="topology.kubernetes.io/zone label for the built-in node.")
@click.option("--region", default=None, help="topology.kubernetes.io/region label for the built-in node.")
@click.option("--no-node", is_flag=True, help="Run no built-in node (join nodes with `kybern agent`).")
@click.option("--agent-in-process", is_flag=True,
              help="Run the built-in node's agent inside this process instead of its own (one process, "
                   "less memory; pod starts queue behind API requests under load).")
@click.option("--pod-network", type=click.Choice(["auto", "cni", "host"]), **POD_NETWORK_OPT)
@click.option("--max-pods", **MAX_PODS_OPT)
@click.option("--runtime", **RUNTIME_OPT)
@click.option("--proxy-mode", type=click.Choice(["auto", "nftables", "iptables", "userspace"]), **PROXY_MODE_OPT)
@click.option("--ingress-http-port", type=click.IntRange(1, 65535), default=None,
              help="Port the ingress controller serves HTTP on.  [default: 80 as root, else 8080]")
@click.option("--ingress-https-port", type=click.IntRange(1, 65535), default=None,
              help="Port the ingress controller serves HTTPS on.  [default: 443 as root, else 8443]")
@click.option("--ingress-plane", type=click.Choice(["auto", "nginx", "builtin"]), default="auto",
              show_default=True, help="Ingress data plane: nginx if installed (auto), or the built-in proxy.")
@click.option("--no-ingress", is_flag=True, help="Run no ingress controller.")
@click.option("--dns-address", default="127.0.0.1", show_default=True, help="Address the cluster DNS listens on.")
@click.option("--dns-port", type=click.IntRange(0, 65535), default=1053, show_default=True,
              help="Cluster DNS port (UDP and TCP; a free one is used if it is taken, 0 always picks one).")
@click.option("--no-dns", is_flag=True, help="Run no cluster DNS.")
@click.option("--admission-control-config-file", "admission_config", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="kube-apiserver's AdmissionConfiguration: the PodSecurity plugin's cluster-wide defaults "
                   "and exemptions (docs/security.md).")
@click.option("--authorization-mode", "authorization_mode", default="Node,RBAC", show_default=True,
              callback=_authorization_mode,
              help="kube-apiserver's authorizers, in order: a comma list of AlwaysAllow, AlwaysDeny, Node, RBAC "
                   "(docs/rbac.md).")
@click.option("--anonymous-auth", "anonymous_auth", **ANONYMOUS_AUTH_OPT)
@click.option("--leader-elect/--no-leader-elect", **LEADER_ELECT_OPT)
@leader_elect_timing
@click.option("--pod-manifest-path", "pod_manifest_path", **MANIFEST_PATH_OPT)
@audit_flags
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def up(data_dir: Path, address: str, port: int, kubeconfig_path: Path, datastore: str, api_workers: int, node_name: str,
       zone: str | None, no_node: bool, pod_network: str, proxy_mode: str, ingress_http_port: int | None,
       ingress_https_port: int | None, ingress_plane: str, no_ingress: bool, dns_address: str, dns_port: int,
       no_dns: bool, verbose: int, max_pods: int, runtime: str, agent_in_process: bool,
       region: str | None, admission_config: Path | None, authorization_mode: str, anonymous_auth: bool,
       leader_elect: bool | None,
       leader_elect_lease_duration: float, leader_elect_renew_deadline: float, leader_elect_retry_period: float,
       pod_manifest_path: Path | None, audit_policy_file: str | None, audit_log_path: str, audit_log_maxage: int,
       audit_log_maxbackup: int, audit_log_maxsize: int) -> None:
    """Start a whole cluster in this process; Ctrl-C stops it, state is kept."""
    _logging(verbose)
    _check_runtime(runtime)
    _check_admission_config(admission_config)
    audit = _audit(audit_policy_file, audit_log_path, audit_log_maxage, audit_log_maxbackup, audit_log_maxsize)
    t0 = time.monotonic()
    try:
        lock = cluster.lock_data_dir(data_dir)
    except cluster.DataDirBusy as e:
        raise click.ClickException(str(e)) from None
    cfg = cluster.ClusterConfig(data_dir=data_dir, address=address, port=port, datastore=datastore,
                                api_workers=api_workers, node_name=node_name or socket.gethostname().lower(), zone=zone,
                                run_node=not no_node, pod_network=pod_network, proxy_mode=proxy_mode,
                                run_ingress=not no_ingress, ingress_http_port=ingress_http_port,
                                ingress_https_port=ingress_https_port, ingress_plane=ingress_plane,
                                run_dns=not no_dns, dns_address=dns_address, dns_port=dns_port,
                                max_pods=max_pods, runtime=runtime, agent_process=not agent_in_process,
                                verbose=verbose, labels={REGION_LABEL: region} if region else {},
                                admission_config=admission_config, authorization_mode=authorization_mode,
                                anonymous_auth=anonymous_auth, leader_elect=leader_elect,
                                leader_timing=_leader_timing(leader_elect_lease_duration, leader_elect_renew_deadline,
                                                             leader_elect_retry_period),
                                pod_manifest_path=pod_manifest_path.resolve() if pod_manifest_path else None,
                                audit=audit)

    def ready(r: cluster.Running) -> None:
        kubeconfig.write_context(Path(kubeconfig_path), name="kybern", server=r.server_url,
                                 ca_file=r.ca_file, token=r.admin_token)
        (data_dir / "kubeconfig").unlink(missing_ok=True)
        kubeconfig.write_context(data_dir / "kubeconfig", name="kybern", server=r.server_url,
                                 ca_file=r.ca_file, token=r.admin_token)
        where = datastore if datastore else str(data_dir / "state.db")
        click.echo(f"kybern is up in {time.monotonic() - t0:.1f}s: API at {r.server_url}, "
                   f"state in {where}")
        click.echo(f"  kubectl context 'kybern' written to {kubeconfig_path}; try: kubectl get nodes")
        click.echo(f"  add a node: kybern agent --server {r.server_url} --token {r.node_token} "
                   f"--ca-file {r.ca_file} --name NAME")
        click.echo(f"    (or, as kubeadm join, with an expiring token and no CA file to copy: "
                   f"kybern token create --print-join-command --data-dir {data_dir})")
        click.echo("  Ctrl-C stops the cluster; `kybern up` again resumes it.")
        sys.stdout.flush()

    try:  # uvloop for the API, unless the node agent (asyncio child watchers) shares the process
        serverloop.run(cluster.serve_forever(cfg, on_ready=ready), fast=not agent_in_process)
    except KeyboardInterrupt:
        pass
    finally:
        os.close(lock)
    click.echo("kybern stopped.")


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=6443, show_default=True)
@click.option("--datastore", default="", help="sqlite:///PATH or etcd://HOST:PORT.")
@click.option("--api-workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="apiserver processes sharing the API port (docs/apiserver.md); more use more cores.")
@click.option("--no-controllers", is_flag=True, help="Serve the API only.")
@click.option("--no-scheduler", is_flag=True, help="Run the controllers but no scheduler (see `kybern scheduler`).")
@click.option("--admission-control-config-file", "admission_config", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="kube-apiserver's AdmissionConfiguration: the PodSecurity plugin's cluster-wide defaults "
                   "and exemptions (docs/security.md).")
@click.option("--authorization-mode", "authorization_mode", default="Node,RBAC", show_default=True,
              callback=_authorization_mode,
              help="kube-apiserver's authorizers, in order: a comma list of AlwaysAllow, AlwaysDeny, Node, RBAC "
                   "(docs/rbac.md).")
@click.option("--anonymous-auth", "anonymous_auth", **ANONYMOUS_AUTH_OPT)
@click.option("--leader-elect/--no-leader-elect", **LEADER_ELECT_OPT)
@leader_elect_timing
@audit_flags
@click.option("-v", "--verbose", count=True)
def server(data_dir: Path, address: str, port: int, datastore: str, api_workers: int, no_controllers: bool,
           no_scheduler: bool, verbose: int, admission_config: Path | None, authorization_mode: str, anonymous_auth: bool,
           leader_elect: bool | None, leader_elect_lease_duration: float, leader_elect_renew_deadline: float,
           leader_elect_retry_period: float, audit_policy_file: str | None, audit_log_path: str, audit_log_maxage: int,
           audit_log_maxbackup: int, audit_log_maxsize: int) -> None:
    """Run the apiserver (and scheduler and controllers) without a node."""
    _logging(verbose)
    _check_admission_config(admission_config)
    audit = _audit(audit_policy_file, audit_log_path, audit_log_maxage, audit_log_maxbackup, audit_log_maxsize)
    try:
        lock = cluster.lock_data_dir(data_dir)
    except cluster.DataDirBusy as e:
        raise click.ClickException(str(e)) from None
    cfg = cluster.ClusterConfig(data_dir=data_dir, address=address, port=port, datastore=datastore,
                                api_workers=api_workers, run_node=False, run_controllers=not no_controllers,
                                run_scheduler=not no_scheduler, admission_config=admission_config,
                                authorization_mode=authorization_mode, anonymous_auth=anonymous_auth,
                                leader_elect=leader_elect,
                                leader_timing=_leader_timing(leader_elect_lease_duration, leader_elect_renew_deadline,
                                                             leader_elect_retry_period), audit=audit)

    def ready(r: cluster.Running) -> None:
        kubeconfig.write_context(data_dir / "kubeconfig", name="kybern", server=r.server_url,
                                 ca_file=r.ca_file, token=r.admin_token)
        click.echo(f"kybern server at {r.server_url}; kubeconfig: {data_dir / 'kubeconfig'}; "
                   f"node token: {r.node_token}")
        sys.stdout.flush()

    try:
        serverloop.run(cluster.serve_forever(cfg, on_ready=ready))  # uvloop (serverloop.py)
    except KeyboardInterrupt:
        pass
    finally:
        os.close(lock)


@main.command()
@click.option("--server", "server_url", required=True, help="The API URL `kybern up` printed.")
@click.option("--token", required=True, help="The join token `kybern up` printed.")
@click.option("--ca-file", type=click.Path(exists=True), default=None, help="The cluster CA certificate.")
@click.option("--discovery-token-ca-cert-hash", "ca_cert_hashes", multiple=True, metavar="sha256:HEX",
              help="Without --ca-file: learn the CA from kube-public/cluster-info, signed with the bootstrap "
                   "--token, if its public key has this hash (kubeadm join's; repeatable).")
@click.option("--discovery-token-unsafe-skip-ca-verification", "skip_ca_verification", is_flag=True,
              help="Without --ca-file: trust the signed cluster-info's CA without a pinned hash.")
@click.option("--name", default=None, help="Node name (default: hostname).")
@click.option("--zone", default=None, help="topology.kubernetes.io/zone label.")
@click.option("--region", default=None, help="topology.kubernetes.io/region label.")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address pods and logs are served on.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Agent state (default: ~/.kybern/agents/NAME).")
@click.option("--pod-network", type=click.Choice(["auto", "cni", "host"]), **POD_NETWORK_OPT)
@click.option("--max-pods", **MAX_PODS_OPT)
@click.option("--runtime", **RUNTIME_OPT)
@click.option("--proxy-mode", type=click.Choice(["auto", "nftables", "iptables", "userspace"]), **PROXY_MODE_OPT)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="A label for this node, as the kubelet's --node-labels (repeatable).")
@click.option("--event-qps", type=click.FloatRange(min=0), default=50.0, show_default=True,
              help="Events recorded per second, as the kubelet's (0: unlimited).")
@click.option("--event-burst", type=click.IntRange(min=1), default=100, show_default=True,
              help="Events recorded at once before --event-qps applies, as the kubelet's.")
@click.option("--pod-manifest-path", "pod_manifest_path", **MANIFEST_PATH_OPT)
@click.option("-v", "--verbose", count=True)
def agent(server_url: str, token: str, ca_file: str | None, ca_cert_hashes: tuple[str, ...],
          skip_ca_verification: bool, name: str | None, zone: str | None, address: str,
          data_dir: Path | None, pod_network: str, proxy_mode: str, verbose: int, max_pods: int,
          runtime: str, labels: tuple[str, ...], event_qps: float, event_burst: int, region: str | None,
          pod_manifest_path: Path | None) -> None:
    """Join this machine (or another agent on it) to a running cluster as a node."""
    _logging(verbose)
    _check_runtime(runtime)
    from kybern.client.http import Client
    from kybern.node import bootstrap
    from kybern.node.agent import NodeAgent

    name = name or socket.gethostname().lower()
    data_dir = data_dir or DEFAULT_DATA / "agents" / name
    node_labels: dict[str, str] = {}
    for kv in labels:
        k, eq, v = kv.partition("=")
        if not eq or not k:
            raise click.BadParameter(f"{kv!r} is not KEY=VALUE", param_hint="--label")
        node_labels[k] = v
    if region:
        node_labels[REGION_LABEL] = region
    try:
        lock = cluster.lock_data_dir(data_dir)
    except cluster.DataDirBusy as e:
        raise click.ClickException(str(e)) from None
    if ca_file is None and (ca_cert_hashes or skip_ca_verification):
        from kybern.node import discovery

        try:  # as kubeadm join --discovery-token-ca-cert-hash: the CA from the signed cluster-info
            ca_file = asyncio.run(discovery.discover_in_child(server_url, token, list(ca_cert_hashes),
                                                              data_dir / "pki" / "ca.crt", skip_ca_verification))
        except discovery.DiscoveryError as e:
            raise click.ClickException(str(e)) from None

    async def run() -> None:
        import signal

        from kybern.cli import gc_tuning

        gc_tuning.tune()
        trimmer = asyncio.create_task(gc_tuning.return_free_memory())
        client = Client(server_url, token=token, ca_file=ca_file, user_agent="kubelet/v1.32.0 (kybern)")
        taken = await _node_served_elsewhere(client, name)
        if taken:
            await client.close()
            raise click.ClickException(taken)
        try:  # the node's own identity, system:node:NAME, as the kubelet's TLS bootstrap
            cert, key = await bootstrap.node_certificate_in_child(server_url, token, ca_file, name, data_dir,
                                                                  user_agent="kubelet/v1.32.0 (kybern)",
                                                                  addresses=[address])
            creds: dict[str, Any] = {"cert_file": cert, "key_file": key}
        except bootstrap.BootstrapError as e:
            if tokens.is_bootstrap_token(token):  # it may only ask for a certificate: nothing to go on with
                await client.close()
                raise click.ClickException(f"{e} (with bootstrap token {token.split('.')[0]})") from None
            logging.getLogger("kybern.node.bootstrap").warning("%s; node %s goes on with the join token", e, name)
            creds = {"token": token}
        await client.close()
        client = Client(server_url, ca_file=ca_file, user_agent="kubelet/v1.32.0 (kybern)", **creds)
        a = NodeAgent(client, name=name, data_dir=str(data_dir), address=address, zone=zone, token=token,
                      labels=node_labels or None, event_qps=event_qps, event_burst=event_burst,
                      pod_network=pod_network, max_pods=max_pods, runtime=cluster.node_runtime(runtime, address),
                      pod_manifest_path=str(pod_manifest_path.resolve()) if pod_manifest_path else None)
        proxy_client = Client(server_url, ca_file=ca_file, user_agent="kube-proxy/v1.32.0 (kybern)", **creds)
        proxy = asyncio.create_task(cluster.supervise("service-proxy", cluster.proxy_runner(
            lambda: proxy_client, str(data_dir), proxy_mode, address, a.name)) if runtime != "fake"
            else asyncio.Event().wait())  # hollow nodes: nothing to forward to
        netpol_client = Client(server_url, ca_file=ca_file, user_agent=cluster.NETPOL_AGENT, **creds)
        netpol = asyncio.create_task(cluster.supervise("network-policy", cluster.netpol_runner(
            lambda: netpol_client, str(data_dir), a)) if runtime != "fake" else asyncio.Event().wait())
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        task = asyncio.create_task(a.run())
        click.echo(f"node {name} joining {server_url}")
        await asyncio.wait([task, asyncio.create_task(done.wait())], return_when=asyncio.FIRST_COMPLETED)
        await a.stop()
        for t in (task, proxy, netpol, trimmer):
            t.cancel()
        await asyncio.gather(task, proxy, netpol, trimmer, return_exceptions=True)
        await client.close()
        await proxy_client.close()
        await netpol_client.close()

    try:
        asyncio.run(run())
    finally:
        os.close(lock)


async def _node_served_elsewhere(client: Any, name: str) -> str | None:
    """Why `name` cannot be joined: another agent (another data dir) serves that Node
    now, i.e. the kubelet port in its status answers. Two agents under one name
    would both run every pod bound to it. A Node whose agent is gone is taken over,
    as a kubelet re-registering."""
    from kybern.client.resources import NODES

    try:
        node = await client.get(NODES, name)
    except Exception:  # noqa: BLE001 - no such node, or the API not up yet: the agent deals with it
        return None
    st = node.get("status") or {}
    port = (((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")) or 0
    addr = next((a.get("address") for a in st.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    if not port or not addr:
        return None
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(addr, port), 2)
    except (TimeoutError, OSError):
        return None
    w.close()
    return (f"node {name!r} is already served by a running agent (its kubelet port {addr}:{port} answers); "
            f"two agents under one name would both run its pods. Give this one another name with --name "
            f"(and its own --data-dir), or stop the other agent first.")


@main.command("scheduler")
@click.option("--server", "server_url", required=True, help="The API URL.")
@click.option("--token", required=True, help="A bearer token (the admin token in DATA_DIR/admin.token).")
@click.option("--ca-file", type=click.Path(exists=True), default=None, help="The cluster CA certificate.")
@click.option("--name", default="default-scheduler", show_default=True,
              help="schedulerName of the pods this scheduler binds.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True,
              help="Schedule only while holding the Lease kube-system/<--leader-elect-resource-name>, as "
                   "kube-scheduler: several of these processes run one at a time.")
@click.option("--leader-elect-resource-name", default=None,
              help="The Lease's name [default: kube-scheduler, or the --name of another scheduler].")
@leader_elect_timing
@click.option("-v", "--verbose", count=True)
def scheduler_cmd(server_url: str, token: str, ca_file: str | None, name: str, verbose: int, leader_elect: bool,
                  leader_elect_resource_name: str | None, leader_elect_lease_duration: float,
                  leader_elect_renew_deadline: float, leader_elect_retry_period: float) -> None:
    """Run a scheduler in its own process, as kube-scheduler (for a server started
    with --no-scheduler, or a second scheduler under another --name)."""
    _logging(verbose)
    from kybern.client.http import Client
    from kybern.client.leaderelection import LeaderElector
    from kybern.scheduler.scheduler import run_scheduler

    lease = leader_elect_resource_name or ("kube-scheduler" if name == "default-scheduler" else name)
    timing = _leader_timing(leader_elect_lease_duration, leader_elect_renew_deadline, leader_elect_retry_period)

    async def run() -> None:
        import signal

        client = Client(server_url, token=token, ca_file=ca_file, user_agent="kube-scheduler/v1.32.0 (kybern)")
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        click.echo(f"scheduler {name} following {server_url}")
        try:
            if not leader_elect:
                await run_scheduler(client, name=name, stop=stop)
                return
            elector = LeaderElector(client, lease, lease_duration=timing[0], renew_deadline=timing[1],
                                    retry_period=timing[2])
            work = asyncio.create_task(elector.run(lambda: run_scheduler(client, name=name, stop=stop)))
            await asyncio.wait({work, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
            work.cancel()  # releases the Lease
            with contextlib.suppress(asyncio.CancelledError):
                await work
        finally:
            await client.close()

    asyncio.run(run())


@main.command("api-worker", hidden=True)
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--address", required=True)
@click.option("--port", type=int, required=True)
@click.option("--datastore", required=True)
@click.option("--index", type=int, default=1)
@click.option("--admission-control-config-file", "admission_config", default=None, type=click.Path(path_type=Path))
@click.option("--authorization-mode", "authorization_mode", default="Node,RBAC")
@click.option("--anonymous-auth", "anonymous_auth", type=click.BOOL, default=True)
@audit_flags
def api_worker(data_dir: Path, address: str, port: int, datastore: str, index: int,
               admission_config: Path | None, authorization_mode: str, anonymous_auth: bool,
               audit_policy_file: str | None, audit_log_path: str,
               audit_log_maxage: int, audit_log_maxbackup: int, audit_log_maxsize: int) -> None:
    """One extra apiserver process, started by `--api-workers` (not run by hand)."""
    _logging(0)
    from kybern.cli import apiworkers

    audit = _audit(audit_policy_file, audit_log_path, audit_log_maxage, audit_log_maxbackup, audit_log_maxsize)
    serverloop.run(apiworkers.serve_worker(data_dir, address, port, datastore, admission_config, authorization_mode,
                                           audit, anonymous_auth))


def _check_admission_config(path: Path | None) -> None:
    """Refuse to start with an invalid admission configuration, as kube-apiserver does."""
    if path is not None:
        from kybern.apiserver import podsecurity

        try:
            podsecurity.load_config(path)
        except ValueError as e:
            raise click.ClickException(f"--admission-control-config-file: {e}") from None


@main.group()
def image() -> None:
    """Manage the local image store."""


@image.command("import")
@click.argument("ref")
@click.argument("source", type=click.Path(exists=True))
@click.option("--entrypoint", multiple=True, help="The image's entrypoint, one word per option (repeat it).")
@click.option("--cmd", multiple=True, help="The image's default arguments, one word per option (repeat it).")
@click.option("--env", multiple=True, metavar="NAME=VALUE", help="An environment variable (repeatable).")
@click.option("--workdir", default=None, help="The image's working directory.")
@click.option("--user", default=None, metavar="USER[:GROUP]",
              help="Who the image runs as, as a Dockerfile's USER (a name or uid; the linux runtime applies it).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True)
def image_import(ref: str, source: str, entrypoint: tuple[str, ...], cmd: tuple[str, ...], env: tuple[str, ...],
                 workdir: str | None, user: str | None, data_dir: Path) -> None:
    """Register SOURCE as image REF (NAME:TAG) for pods on this machine's nodes.

    SOURCE is a directory (the image's files), or a tarball: a `docker save` archive,
    an OCI layout archive, or a plain root filesystem (`docker export`). Options set
    the image's config (an archive's own config fills what they leave out)."""
    from kybern.node.image_archive import ImageArchiveError
    from kybern.node.images import ImageStore, InvalidReference

    config: dict[str, object] = {}
    if entrypoint:
        config["entrypoint"] = list(entrypoint)
    if cmd:
        config["cmd"] = list(cmd)
    if env:
        bad = [e for e in env if "=" not in e]
        if bad:
            raise click.BadParameter(f"{bad[0]!r} is not NAME=VALUE", param_hint="--env")
        config["env"] = list(env)
    if workdir:
        config["workingDir"] = workdir
    if user:
        config["user"] = user
    store = ImageStore(str(data_dir / "node"))
    try:
        if os.path.isdir(source):
            info = store.import_dir(ref, source, config=config)
        else:
            info = store.import_archive(ref, source, config=config)
    except (ImageArchiveError, InvalidReference, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"imported {info.get('ref', ref)} from {source}")


@image.command("rm")
@click.argument("refs", nargs=-1, required=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True)
def image_rm(refs: tuple[str, ...], data_dir: Path) -> None:
    """Remove images from the local store (running containers keep their files)."""
    from kybern.node.images import ImageStore

    store = ImageStore(str(data_dir / "node"))
    missing = [r for r in refs if not store.remove(r)]
    for r in refs:
        if r not in missing:
            click.echo(f"removed {r}")
    if missing:
        raise click.ClickException(f"no such image: {', '.join(missing)}")


@image.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True)
def image_list(data_dir: Path) -> None:
    """List the images in the local store."""
    from kybern.node.images import ImageStore

    for img in ImageStore(str(data_dir / "node")).list():
        click.echo(img.get("ref", str(img)))


main.add_command(tokens.token)

if __name__ == "__main__":
    main()
