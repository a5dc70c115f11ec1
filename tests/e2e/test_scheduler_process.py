"""`kybern scheduler`: the scheduler as its own process (kube-scheduler's shape),
against a `kybern server --no-scheduler`; and a second scheduler by name
(`spec.schedulerName`), as upstream supports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import urllib3

from tests.unit.storage.etcd_server import free_port

NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str, scheduler: str | None = None) -> dict:
    spec = {"containers": [{"name": "c", "image": "demo:v1"}]}
    if scheduler:
        spec["schedulerName"] = scheduler
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


class Server:
    def __init__(self, base, *extra: str) -> None:
        self.base = base
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kybern.cli.main", "server", "--data-dir", str(base / "data"), "--port",
             str(self.port), "--no-scheduler", *extra], env={**os.environ, "HOME": str(base)},
            stdout=subprocess.PIPE, stderr=open(base / "server.log", "w"), text=True)  # noqa: SIM115
        assert self.proc.stdout
        assert "kybern server at" in self.proc.stdout.readline()
        self.url = f"https://127.0.0.1:{self.port}"
        self.token = (base / "data" / "admin.token").read_text().strip()
        self.ca = str(base / "data" / "pki" / "ca.crt")
        self.pool = urllib3.PoolManager(ca_certs=self.ca, cert_reqs="CERT_REQUIRED", retries=False)

    def req(self, method: str, path: str, body: dict | None = None) -> dict:
        r = self.pool.request(method, self.url + path, body=json.dumps(body).encode() if body else None,
                              headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        assert r.status < 300, r.data
        return json.loads(r.data)

    def scheduler(self, *extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "scheduler", "--server", self.url,
                                 "--token", self.token, "--ca-file", self.ca, *extra],
                                stdout=subprocess.DEVNULL, stderr=open(self.base / "scheduler.log", "a"))

    def node_of(self, name: str) -> str | None:
        return self.req("GET", f"/api/v1/namespaces/default/pods/{name}")["spec"].get("nodeName")

    def wait_bound(self, name: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if n := self.node_of(name):
                return n
            time.sleep(0.2)
        raise AssertionError(f"{name} not bound; scheduler log:\n{(self.base / 'scheduler.log').read_text()}")


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    s.proc.terminate()
    s.proc.wait(30)


def _lease(server: Server, name: str) -> dict:
    """The Lease's spec ({} while there is none)."""
    r = server.pool.request("GET", f"{server.url}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}",
                            headers={"Authorization": f"Bearer {server.token}"})
    return json.loads(r.data)["spec"] if r.status == 200 else {}


def _healthy(server: Server) -> str:
    """The scheduler's ComponentStatus condition, as `kubectl get cs` shows it."""
    return server.req("GET", "/api/v1/componentstatuses/scheduler")["conditions"][0]["status"]


def _wait(what: str, cond, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out := cond():
            return out
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_schedulers_elect_one_leader_and_a_standby_takes_over(tmp_path):
    """Two `kybern scheduler` processes (leader election on, as kube-scheduler's default):
    one holds the Lease kube-system/kube-scheduler and binds; killed without releasing it,
    the other takes over once the lease runs out (here 3 s) and binds the next pod; a
    clean stop releases it. The server's controllers (`--leader-elect`) hold theirs."""
    server = Server(tmp_path, "--leader-elect")
    fast = ("--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
            "--leader-elect-retry-period", "0.5")
    a = b = None
    try:
        cm = _wait("the controller-manager's lease", lambda: _lease(server, "kube-controller-manager"))
        assert cm["holderIdentity"].startswith(os.uname().nodename + "_") and cm["leaseDurationSeconds"] == 15
        server.req("POST", "/api/v1/nodes", NODE)
        server.req("PUT", "/api/v1/nodes/n1/status",
                   {**server.req("GET", "/api/v1/nodes/n1"), "status": NODE["status"]})
        assert _healthy(server) == "Unknown"  # no scheduler here, no Lease yet
        a = server.scheduler(*fast)
        first = _wait("a leader", lambda: _lease(server, "kube-scheduler").get("holderIdentity"))
        assert _healthy(server) == "True"  # `kubectl get cs`: the leader renews its Lease
        b = server.scheduler(*fast)
        server.req("POST", "/api/v1/namespaces/default/pods", pod("p1"))
        assert server.wait_bound("p1") == "n1"
        time.sleep(1.5)  # b has seen the lease renewed by a: it stays a standby
        lease = _lease(server, "kube-scheduler")
        assert lease["holderIdentity"] == first and lease["leaseTransitions"] == 0
        a.kill()
        a.wait(10)
        killed = time.monotonic()
        server.req("POST", "/api/v1/namespaces/default/pods", pod("p2"))
        assert server.wait_bound("p2") == "n1"
        assert time.monotonic() - killed >= 2.0  # not before the lease ran out
        lease = _lease(server, "kube-scheduler")
        assert lease["holderIdentity"] not in (first, None) and lease["leaseTransitions"] == 1
        b.terminate()
        assert b.wait(20) == 0
        released = _lease(server, "kube-scheduler")
        assert not released.get("holderIdentity") and released["leaseDurationSeconds"] == 1
        assert _healthy(server) == "False"
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
        server.proc.terminate()
        server.proc.wait(30)


def test_pods_wait_for_a_scheduler_process(server):
    server.req("POST", "/api/v1/nodes", NODE)
    server.req("PUT", "/api/v1/nodes/n1/status",
               {**server.req("GET", "/api/v1/nodes/n1"), "status": NODE["status"]})
    server.req("POST", "/api/v1/namespaces/default/pods", pod("first"))
    time.sleep(2)
    assert server.node_of("first") is None  # --no-scheduler: nobody binds it
    sched = server.scheduler()
    try:
        assert server.wait_bound("first") == "n1"
        server.req("POST", "/api/v1/namespaces/default/pods", pod("second"))
        assert server.wait_bound("second") == "n1"
    finally:
        sched.terminate()
        assert sched.wait(20) == 0


def test_a_second_scheduler_binds_only_its_own_pods(server):
    server.req("POST", "/api/v1/nodes", NODE)
    server.req("PUT", "/api/v1/nodes/n1/status", {**server.req("GET", "/api/v1/nodes/n1"), "status": NODE["status"]})
    other = server.scheduler("--name", "other-scheduler")
    try:
        server.req("POST", "/api/v1/namespaces/default/pods", pod("mine", "other-scheduler"))
        server.req("POST", "/api/v1/namespaces/default/pods", pod("default-one"))
        assert server.wait_bound("mine") == "n1"
        time.sleep(1)
        assert server.node_of("default-one") is None  # no default scheduler runs
    finally:
        other.terminate()
        other.wait(20)
