"""Shared test fixtures: a real kybern cluster (`kybern up` as a subprocess) in a
temp dir on a free port, driven by the real kubectl and the official client."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

KUBECTL = "/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else (shutil.which("kubectl") or "kubectl")


@dataclass
class Cluster:
    dir: Path
    kubeconfig: Path
    server: str
    proc: subprocess.Popen[str]
    env: dict[str, str]
    log: Path

    def client(self) -> Any:
        """kybern's own API client, as the cluster's admin (the kubeconfig's token)."""
        import yaml

        from kybern.client.http import Client

        cfg = yaml.safe_load(self.kubeconfig.read_text())
        return Client(cfg["clusters"][0]["cluster"]["server"], token=cfg["users"][0]["user"]["token"],
                      ca_file=str(self.dir / "data" / "pki" / "ca.crt"))

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([KUBECTL, *args], env=self.env, capture_output=True, text=True, input=input,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def kjson(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def wait_for(self, predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except (AssertionError, json.JSONDecodeError, KeyError) as e:
                last = e
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n--- server log tail ---\n"
                             f"{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-n:])
        except OSError:
            return ""

    def api_client(self):
        from kubernetes import client, config

        return client.ApiClient(config.new_client_from_config(str(self.kubeconfig)).configuration)


def free_port() -> int:
    """A TCP port free on loopback now (for a test's listener)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(base: Path, *extra: str, wait_node: bool = True) -> Cluster:
    base.mkdir(parents=True, exist_ok=True)
    home = base / "home"
    home.mkdir(exist_ok=True)
    kubeconfig = base / "kubeconfig"
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}
    if not any(a.startswith("--ingress") for a in extra):
        extra = (*extra, "--no-ingress")  # test clusters must not take the host's 80/443
    log = base / "kybern.log"
    logf = open(log, "a")
    proc = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "up", "--data-dir", str(base / "data"),
                             "--port", "0", "--kubeconfig", str(kubeconfig), "--node-name", "node-1", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=logf, text=True, start_new_session=True)
    assert proc.stdout is not None
    server = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        logf.write(line)
        m = re.search(r"API at (https://\S+),", line)
        if m:
            server = m.group(1)
            break
    if not server:
        proc.kill()
        raise RuntimeError(f"kybern up did not start:\n{log.read_text()}")
    # keep draining stdout so the child never blocks on a full pipe
    import threading

    def drain() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            logf.write(line)
            logf.flush()

    threading.Thread(target=drain, daemon=True).start()
    c = Cluster(base, kubeconfig, server, proc, env, log)
    if wait_node:
        c.wait_for(lambda: "Ready" in c.kubectl("get", "nodes", "--no-headers", check=False).stdout.split(),
                   timeout=30, what="node Ready")
    return c


def stop_cluster(c: Cluster, sig: int = signal.SIGINT, timeout: float = 45) -> int:
    if c.proc.poll() is None:
        c.proc.send_signal(sig)
        try:
            c.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(c.proc.pid, signal.SIGKILL)
            c.proc.wait()
    _remove_agent_cgroups(c.proc.args, default_data_dir=c.dir / "data" / "node")
    return c.proc.returncode


def _remove_agent_cgroups(argv: Any, default_data_dir: Path | None = None) -> None:
    """What a killed agent left in the cgroup hierarchies (as root): a clean stop removes
    its tree, a SIGKILL leaves it for the next agent on the same data dir, which a test
    never starts; without this every test run would leave a tree per killed agent."""
    from kybern.node.runtimes.cgroups import Cgroups

    args = [str(a) for a in argv]

    def flag(*names: str) -> str | None:
        for n in names:
            if n in args[:-1]:
                return args[len(args) - 1 - args[::-1].index(n) + 1]  # the last one given wins
        return None

    name, data_dir = flag("--node-name", "--name"), flag("--data-dir")
    if "up" in args and default_data_dir is not None:
        data_dir = str(default_data_dir)  # `kybern up`'s agent keeps its state under <data-dir>/node
    if name and data_dir:
        with contextlib.suppress(OSError):
            Cgroups.for_node(name, data_dir).remove_all()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster shared by the tests of a session (each test uses its own namespace)."""
    c = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    stop_cluster(c)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") + f"-{os.getpid() % 1000}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def start_agent(c: Cluster, name: str, data_dir: Path, *extra: str, env: dict[str, str] | None = None,
                log: Path | None = None, wrap: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """Join another node to `c` with `kybern agent`, as a user would (`wrap`: a
    command that runs it, e.g. `ip netns exec NS`, which execs it in turn)."""
    token = (c.dir / "data" / "node.token").read_text().strip()
    return subprocess.Popen([*wrap, sys.executable, "-m", "kybern.cli.main", "agent", "--server", c.server,
                             "--token", token, "--ca-file", str(c.dir / "data" / "pki" / "ca.crt"),
                             "--name", name, "--data-dir", str(data_dir), *extra],
                            env={**c.env, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=open(log, "a") if log else subprocess.DEVNULL, start_new_session=True)


def stop_agent(p: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    _remove_agent_cgroups(p.args)


def _sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


@contextlib.contextmanager
def peer_netns(name: str, host_end: str, ns_end: str, host_cidr: str, ns_cidr: str,
               gateway: str | None = None) -> Iterator[tuple[str, ...]]:
    """Another "machine": a network namespace joined to the host by a veth pair, the
    host end at `host_cidr` and the namespace's at `ns_cidr` (with a default route via
    `gateway` if given); yields the `ip netns exec` prefix to run commands in it.
    Whatever a killed run left behind is removed first."""
    _sh("ip", "netns", "del", name, check=False)
    _sh("ip", "link", "del", host_end, check=False)
    _sh("ip", "netns", "add", name)
    inside = ("ip", "netns", "exec", name)
    try:
        _sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", name)
        _sh("ip", "addr", "add", host_cidr, "dev", host_end)
        _sh("ip", "link", "set", host_end, "up")
        _sh(*inside, "ip", "addr", "add", ns_cidr, "dev", ns_end)
        _sh(*inside, "ip", "link", "set", ns_end, "up")
        _sh(*inside, "ip", "link", "set", "lo", "up")
        if gateway:
            _sh(*inside, "ip", "route", "add", "default", "via", gateway)
        yield inside
    finally:
        _sh("ip", "link", "del", host_end, check=False)
        _sh("ip", "netns", "del", name, check=False)


def children_running(parent: psutil.Process, word: str) -> list[psutil.Process]:
    """`parent`'s children with `word` in their command line; short-lived ones (the
    service proxy's nft or iptables runs) may exit while looked at."""
    out = []
    for p in parent.children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if any(word in a for a in p.cmdline()):
                out.append(p)
    return out


def agent_namespace_fds(cluster: Cluster, kind: str) -> Callable[[], int]:
    """A counter of the namespaces of `kind` ("uts", "mnt") the built-in node agent
    of `cluster` holds by an fd (a pod's hostname, a container's mounts)."""
    [agent] = [p for p in children_running(psutil.Process(cluster.proc.pid), "agent") if "agent" in p.cmdline()]

    def count() -> int:
        n = 0
        for fd in os.listdir(f"/proc/{agent.pid}/fd"):
            with contextlib.suppress(OSError):
                n += os.readlink(f"/proc/{agent.pid}/fd/{fd}").startswith(f"{kind}:[")
        return n
    return count
