"""`kybern up --api-workers 2`: two apiserver processes on one port and one
SQLite file. Whichever process answers, a client sees one consistent API: its
writes in later reads, every write in its watch (in revision order), CRDs
served everywhere; and the extra process dies with the cluster."""

from __future__ import annotations

import json
import signal
import threading
import time

import psutil
import pytest
import urllib3
import yaml

from tests.conftest import start_cluster, stop_cluster


@pytest.fixture(scope="module")
def workers_cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("workers"), "--api-workers", "2")
    yield c
    stop_cluster(c)


@pytest.fixture
def namespace(workers_cluster, request):
    name = request.node.name.lower().replace("_", "-")[:50].strip("-")
    workers_cluster.kubectl("create", "namespace", name)
    yield name
    workers_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _worker_procs(c) -> list[psutil.Process]:
    out = []
    for p in psutil.Process(c.proc.pid).children(recursive=True):
        try:
            if "api-worker" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:  # a short-lived child (a pod, an `nft` call) ended meanwhile
            continue
    return out


class Fresh:
    """Each request on a new TLS connection, so the kernel hands them to both processes."""

    def __init__(self, c) -> None:
        cfg = yaml.safe_load(c.kubeconfig.read_text())
        self.token = next(u for u in cfg["users"] if u["name"] == "kybern-admin")["user"]["token"]
        self.server, self.ca = c.server, str(c.dir / "data" / "pki" / "ca.crt")

    def __call__(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        pool = urllib3.PoolManager(ca_certs=self.ca, cert_reqs="CERT_REQUIRED", retries=False)
        r = pool.request(method, self.server + path, body=json.dumps(body).encode() if body else None,
                         headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                                  "Connection": "close"})
        pool.clear()
        return r.status, json.loads(r.data)


def test_two_processes_serve_the_port(workers_cluster):
    workers = _worker_procs(workers_cluster)
    assert len(workers) == 1, [p.cmdline() for p in workers]
    api = Fresh(workers_cluster)
    before = workers[0].cpu_times()
    for _ in range(60):
        assert api("GET", "/api/v1/namespaces/default")[0] == 200
    after = workers[0].cpu_times()
    # the worker took some of the connections (it burns CPU answering them)
    assert (after.user + after.system) > (before.user + before.system)


def test_reads_see_writes_made_through_the_other_process(workers_cluster, namespace):
    api = Fresh(workers_cluster)
    for i in range(30):
        code, cm = api("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                       {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
        assert code == 201, cm
        code, got = api("GET", f"/api/v1/namespaces/{namespace}/configmaps/cm-{i}")
        assert code == 200 and got["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]
        code, lst = api("GET", f"/api/v1/namespaces/{namespace}/configmaps")  # consistent list
        assert code == 200 and f"cm-{i}" in {x["metadata"]["name"] for x in lst["items"]}


def test_a_watch_sees_every_write_in_order(workers_cluster, namespace):
    from kubernetes import client, watch

    core = client.CoreV1Api(workers_cluster.api_client())
    # the root CA publisher's ConfigMap lands in every new namespace: wait for it, so
    # the watch below sees only this test's writes
    workers_cluster.wait_for(lambda: any(c.metadata.name == "kube-root-ca.crt"
                                         for c in core.list_namespaced_config_map(namespace).items),
                             what="kube-root-ca.crt published")
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    seen: list[tuple[str, int]] = []

    def follow() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=30):
            seen.append((ev["object"].metadata.name, int(ev["object"].metadata.resource_version)))
            if len(seen) == 40:
                w.stop()

    t = threading.Thread(target=follow)
    t.start()
    api = Fresh(workers_cluster)
    for i in range(40):
        assert api("POST", f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": f"w-{i}"}})[0] == 201
    t.join(40)
    assert [n for n, _ in seen] == [f"w-{i}" for i in range(40)]
    revs = [r for _, r in seen]
    assert revs == sorted(revs)


def test_controllers_act_on_writes_answered_by_a_worker(workers_cluster, namespace):
    workers_cluster.kubectl("-n", namespace, "create", "deployment", "web", "--image=demo:v1", "--replicas=3")

    def running() -> bool:
        pods = workers_cluster.kjson("-n", namespace, "get", "pods", "-l", "app=web")["items"]
        return len(pods) == 3 and all(p["status"].get("phase") == "Running" for p in pods)

    workers_cluster.wait_for(running, timeout=60, what="3 running pods")


def test_custom_resources_are_served_by_every_process(workers_cluster, namespace):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.workers.example.com"},
           "spec": {"group": "workers.example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {
                            "size": {"type": "integer"}}}}}}}]}}
    workers_cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    workers_cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.workers.example.com")
    api = Fresh(workers_cluster)
    path = f"/apis/workers.example.com/v1/namespaces/{namespace}/widgets"
    deadline = time.monotonic() + 10
    for i in range(20):
        while True:  # the other process installs the CRD from its watch a moment later
            code, body = api("POST", path, {"apiVersion": "workers.example.com/v1", "kind": "Widget",
                                            "metadata": {"name": f"w{i}"}, "spec": {"size": i}})
            if code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert code == 201, body
    code, lst = api("GET", path)
    assert code == 200 and len(lst["items"]) == 20


def test_workers_die_with_the_cluster(tmp_path):
    c = start_cluster(tmp_path / "c", "--api-workers", "2", "--no-node", wait_node=False)
    workers = _worker_procs(c)
    assert workers
    stop_cluster(c, sig=signal.SIGKILL)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
