"""Pod networking and the service proxy, end to end (root + CNI plugins + nft or
iptables; skipped with the reason otherwise): replicas listening on one port in
their own netns with distinct pod IPs, pod -> pod by IP, host -> ClusterIP
reaching every replica, NodePort, a LoadBalancer address, and teardown leaving
no netns behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from kybern.network.podnet import cni_unavailable_reason, netns_name
from tests.conftest import children_running, peer_netns, start_cluster, stop_cluster

REASON = cni_unavailable_reason() or (
    "" if shutil.which("nft") or shutil.which("iptables-restore") else "neither nft nor iptables is installed")
pytestmark = pytest.mark.skipif(bool(REASON), reason=f"pod networking needs root and the plugins: {REASON}")

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: demo:v1
        command: ["sh", "-c", "echo $HOSTNAME > index.html; exec python3 serve.py"]
        ports: [{containerPort: 80, name: http}]
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8080, targetPort: http}]
"""


def get(url: str, timeout: float = 2) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode().strip()


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A private cluster with CNI pod networking asked for explicitly (the shared one
    uses the default, `auto`, which is the host network when not root)."""
    c = start_cluster(tmp_path_factory.mktemp("cni-cluster"), "--pod-network", "cni")
    yield c
    stop_cluster(c)


def test_pods_services_nodeports_loadbalancers(cluster, namespace):
    node = cluster.kjson("get", "node", "node-1")
    assert node["spec"]["podCIDR"].startswith("10.244."), node["spec"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=MANIFEST)

    def ready_pods():
        pods = cluster.kjson("get", "pods", "-n", namespace, "-l", "app=web")["items"]
        ok = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in p["status"].get("conditions", []))]
        return ok if len(ok) == 3 else None
    pods = cluster.wait_for(ready_pods, timeout=40, what="3 ready replicas")
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    assert len(set(ips.values())) == 3 and all(ip.startswith(node["spec"]["podCIDR"][:-4]) for ip in ips.values()), ips
    for p in pods:
        assert p["status"]["podIP"] != p["status"]["hostIP"]
        assert os.path.exists(f"/var/run/netns/{netns_name(p['metadata']['uid'])}")
    # every replica listens on port 80 of its own address
    for name, ip in ips.items():
        assert get(f"http://{ip}/") == name
    # pod -> pod by IP
    a, b = sorted(ips)[:2]
    out = cluster.kubectl("exec", "-n", namespace, a, "--", "python3", "-c",
                          f"import urllib.request as u; print(u.urlopen('http://{ips[b]}/').read().decode())")
    assert out.stdout.strip() == b

    svc = cluster.wait_for(lambda: (s := cluster.kjson("get", "svc", "web", "-n", namespace))
                           ["status"].get("loadBalancer", {}).get("ingress") and s, what="LoadBalancer address")
    cip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    lb_ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert lb_ip.startswith("127.240.")

    def slices_ready():
        sl = cluster.kjson("get", "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web")
        return sum(len(s.get("endpoints") or []) for s in sl["items"]) == 3
    cluster.wait_for(slices_ready, what="an EndpointSlice with 3 endpoints")
    # host -> ClusterIP reaches all replicas (random, equal probability)
    seen: set[str] = set()
    deadline = time.monotonic() + 15
    while seen != set(ips) and time.monotonic() < deadline:
        try:
            seen.add(get(f"http://{cip}:8080/"))
        except OSError:
            time.sleep(0.1)
    assert seen == set(ips)
    assert get(f"http://127.0.0.1:{node_port}/") in ips  # NodePort on the node's address
    assert get(f"http://{lb_ip}:8080/") in ips  # the LoadBalancer address
    # a pod reaches its own Service (hairpin)
    out = cluster.kubectl("exec", "-n", namespace, a, "--", "python3", "-c",
                          "import urllib.request as u\n"
                          f"print(sorted({{u.urlopen('http://{cip}:8080/').read().decode().strip() for _ in range(30)}}))")
    assert json.loads(out.stdout.replace("'", '"')) == sorted(ips)

    # teardown: the pods' network namespaces are gone
    uids = [netns_name(p["metadata"]["uid"]) for p in pods]
    cluster.kubectl("delete", "deployment", "web", "-n", namespace, "--wait=false")
    cluster.wait_for(lambda: not any(u in netns_list() for u in uids), timeout=40, what="netns removed")
    cluster.wait_for(lambda: not cluster.kjson("get", "pods", "-n", namespace)["items"], timeout=40,
                     what="pods gone")
    # ... and their addresses went back to the pool (CNI DEL reached host-local)
    ipam = cluster.dir / "data" / "node" / "network" / "ipam"
    assert ipam.is_dir()
    leased = {f.name for f in ipam.rglob("*") if f.is_file()}
    assert not leased & set(ips.values()), leased


def test_host_port_reaches_the_pod_and_goes_with_it(cluster, namespace):
    """A container's hostPort: the portmap plugin maps the node's port to the pod
    (its prevResult comes from the built-in bridge plugin), and the mapping goes
    when the pod does."""
    import socket

    with socket.socket() as s:  # a port free on the host
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hp", "namespace": namespace},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "web", "image": "demo:v1",
               "command": ["sh", "-c", "echo $HOSTNAME > index.html; exec python3 serve.py"],
               "ports": [{"containerPort": 80, "hostPort": port}],
               "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1}}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/hp", "--timeout=60s")
    p = cluster.kjson("get", "pod", "hp", "-n", namespace)
    assert p["status"]["podIP"] != p["status"]["hostIP"]
    assert cluster.wait_for(lambda: _try_get(f"http://{p['status']['hostIP']}:{port}/"), timeout=15,
                            what="the hostPort answering") == "hp"
    cluster.kubectl("delete", "pod", "hp", "-n", namespace, "--wait=true", "--timeout=60s")
    cluster.wait_for(lambda: _try_get(f"http://{p['status']['hostIP']}:{port}/", timeout=1) is None, timeout=15,
                     what="the hostPort mapping removed")


def test_pods_get_their_network_after_the_pod_network_worker_is_killed(cluster, namespace):
    """The agent's pod-network worker (netd.py) makes pods' namespaces: SIGKILLed, the
    next pod still gets its own netns and address (the agent starts another worker),
    and the pods that were running keep theirs."""
    import psutil

    def workers() -> list[psutil.Process]:
        return [p for p in psutil.Process(cluster.proc.pid).children(recursive=True)
                if any(a.endswith("network/netd.py") for a in p.cmdline())]

    def run_pod(name: str) -> dict:
        cluster.kubectl("run", name, "-n", namespace, "--image=demo:v1", "--overrides",
                        '{"spec": {"terminationGracePeriodSeconds": 1}}', "--command", "--", "sleep", "300")
        cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        return cluster.kjson("get", "pod", name, "-n", namespace)

    before = run_pod("before")
    [worker] = workers()
    worker.kill()
    worker.wait(10)
    after = run_pod("after")
    assert after["status"]["podIP"] not in (before["status"]["podIP"], after["status"]["hostIP"])
    assert os.path.exists(f"/var/run/netns/{netns_name(after['metadata']['uid'])}")
    assert [w.pid for w in workers()] != [worker.pid] and len(workers()) == 1
    out = cluster.kubectl("exec", "-n", namespace, "after", "--", "python3", "-c",
                          "import socket; s = socket.create_connection(('%s', 1), 2)" % before["status"]["podIP"],
                          check=False)
    assert "Connection refused" in out.stderr  # the first pod's address still answers (no listener on 1)


def _try_get(url: str, timeout: float = 2) -> str | None:
    try:
        return get(url, timeout)
    except OSError:
        return None


def test_a_killed_agent_leaves_no_network_behind(tmp_path):
    """kill -9 the node agent with 12 pods on their own networks: the next agent
    gives each a working network again, and no netns, veth or address of the
    dead one is left (the pod records written before ADD let it undo them)."""
    import socket

    import psutil

    c = start_cluster(tmp_path / "c", "--pod-network", "cni")
    try:
        c.kubectl("create", "deployment", "many", "--image=demo:v1", "--replicas=12", "--", "sleep", "3600")
        c.kubectl("rollout", "status", "deployment/many", "--timeout=90s")
        [agent] = [p for p in children_running(psutil.Process(c.proc.pid), "agent") if "agent" in p.cmdline()]
        bridge = "kybern" + str(int(c.kjson("get", "node", "node-1")["spec"]["podCIDR"].split(".")[2]))
        ipam = c.dir / "data" / "node" / "network" / "ipam"
        agent.kill()
        agent.wait(10)

        def settled():
            pods = c.kjson("get", "pods", "-l", "app=many")["items"]
            ok = [p for p in pods if (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1
                  and "running" in (p["status"]["containerStatuses"][0].get("state") or {})
                  and p["status"].get("podIP")]
            return pods if len(ok) == 12 else None
        pods = c.wait_for(settled, timeout=90, what="12 pods running again after the agent's restart")
        ips = {p["status"]["podIP"] for p in pods}
        assert len(ips) == 12
        ports = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", bridge], check=True,
                                          capture_output=True, text=True).stdout or "[]")
        assert len(ports) == 12, [p["ifname"] for p in ports]  # one veth per pod, none of the dead agent's
        leased = {f.name for f in ipam.rglob("*") if f.is_file() and f.name[0].isdigit()}
        assert leased == ips
        ours = [n for n in netns_list().split() if n.startswith("kybern-")
                and n in {netns_name(p["metadata"]["uid"]) for p in pods}]
        assert len(ours) == 12
        for ip in sorted(ips):  # the host reaches each on its address: a closed port answers with a reset
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((ip, 1), timeout=3)
    finally:
        stop_cluster(c)


CLIENT_NS, CLIENT_HOST_END, CLIENT_NS_END = "kybern-client", "kyb-cli-h", "kyb-cli-n"
CLIENT_HOST_IP, CLIENT_IP = "192.168.231.1", "192.168.231.2"


@pytest.fixture
def outside_client():
    """A client outside the cluster, in its own network namespace routed through the
    host; returns a function fetching a URL from there (None when it fails)."""
    with peer_netns(CLIENT_NS, CLIENT_HOST_END, CLIENT_NS_END, f"{CLIENT_HOST_IP}/30", f"{CLIENT_IP}/30",
                    gateway=CLIENT_HOST_IP) as inside:
        def fetch(url: str, timeout: float = 2) -> str | None:
            p = subprocess.run([*inside, "python3", "-c", "import sys, urllib.request as u; "
                                "print(u.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())",
                                url, str(timeout)], capture_output=True, text=True, check=False)
            return p.stdout.strip() if p.returncode == 0 else None
        yield fetch


def test_traffic_policies_local(cluster, namespace, outside_client):
    """externalTrafficPolicy: Local keeps an outside client's address and uses only this
    node's endpoints (none: dropped, while pods and the node itself still get through);
    internalTrafficPolicy: Local does the same for the cluster IP."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  containers:
  - {name: web, image: demo:v1, readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: echo}
  ports: [{port: 80}]
""")
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/echo", "--timeout=40s")
    svc = cluster.kjson("get", "svc", "echo", "-n", namespace)
    url = f"http://{CLIENT_HOST_IP}:{svc['spec']['ports'][0]['nodePort']}/serve.py"

    def client_seen() -> str:
        got = cluster.wait_for(lambda: outside_client(url), timeout=20, what="the NodePort from outside")
        assert "tiny static web server" in got
        return cluster.kubectl("logs", "echo", "-n", namespace, "--tail=1").stdout.split(" ")[0]
    assert client_seen() == CLIENT_IP  # Local: the client's own address
    cluster.kubectl("patch", "svc", "echo", "-n", namespace, "-p", '{"spec":{"externalTrafficPolicy":"Cluster"}}')
    cluster.wait_for(lambda: client_seen() != CLIENT_IP, timeout=20, what="the client masqueraded (Cluster)")

    # endpoints only on another node: a Service without selector and its own EndpointSlice
    pod_ip = cluster.kjson("get", "pod", "echo", "-n", namespace)["status"]["podIP"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=f"""
apiVersion: v1
kind: Service
metadata: {{name: far}}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  ports: [{{port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: far-1, labels: {{kubernetes.io/service-name: far}}}}
addressType: IPv4
ports: [{{port: 80, protocol: TCP, name: ""}}]
endpoints: [{{addresses: ["{pod_ip}"], nodeName: elsewhere, conditions: {{ready: true}}}}]
""")
    far = cluster.kjson("get", "svc", "far", "-n", namespace)
    cip, node_port = far["spec"]["clusterIP"], far["spec"]["ports"][0]["nodePort"]
    # the node itself reaches the NodePort (short-circuit to every endpoint) ...
    cluster.wait_for(lambda: _try_get(f"http://127.0.0.1:{node_port}/serve.py"), timeout=20, what="local NodePort")
    # ... the outside client does not (dropped: no endpoint here), nor the cluster IP (internal Local)
    assert outside_client(f"http://{CLIENT_HOST_IP}:{node_port}/serve.py", timeout=1.5) is None
    assert _try_get(f"http://{cip}/serve.py", timeout=1.5) is None
    cluster.kubectl("patch", "svc", "far", "-n", namespace, "-p", '{"spec":{"internalTrafficPolicy":"Cluster"}}')
    cluster.wait_for(lambda: _try_get(f"http://{cip}/serve.py"), timeout=20, what="the cluster IP (Cluster)")
