"""NetworkPolicy enforced on the CNI pod network (docs/networking.md), with the real
kubectl on the shared cluster: kubernetes.io's "Declare Network Policy" task
(tasks/administer-cluster/declare-network-policy), then default-deny in both
directions with the node's probes and DNS still working, an egress ipBlock with
`except` and a named port, a connection needing both the source's egress and the
destination's ingress, the same across two agents' bridges (each its own table),
and upstream's validation errors. demo:v1 stands in for nginx and busybox (python3 for
wget); clients give up after 1.5 s, so a blocked connection is a timeout."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

# what a client pod runs: fetch every URL at once, "ok" or why not, as JSON
FETCH = """
import concurrent.futures, json, socket, sys, urllib.request
def get(url):
    try:
        urllib.request.urlopen(url, timeout=1.5).read()
        return "ok"
    except Exception as e:
        why = getattr(e, "reason", e)
        return "timeout" if isinstance(why, socket.timeout) or "timed out" in str(why) else repr(why)
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    print(json.dumps(dict(zip(sys.argv[1:], ex.map(get, sys.argv[1:])))))
"""

CLIENT = ["--image=demo:v1", "--restart=Never", "--command", "--", "sleep", "3600"]


def fetch(cluster, ns: str, pod: str, *urls: str) -> dict[str, str]:
    out = cluster.kubectl("exec", "-n", ns, pod, "--", "python3", "-c", FETCH, *urls)
    return json.loads(out.stdout)


def running(cluster, ns: str, *names: str) -> dict[str, dict]:
    def ok():
        pods = {p["metadata"]["name"]: p for p in cluster.kjson("get", "pods", "-n", ns)["items"]}
        want = [pods.get(n) for n in names]
        return pods if all(p and p["status"].get("phase") == "Running" and p["status"].get("podIP")
                           for p in want) else None
    pods = cluster.wait_for(ok, timeout=40, what=f"pods {names} running")
    if any(pods[n]["status"]["podIP"] == pods[n]["status"].get("hostIP") for n in names):
        pytest.skip("the cluster's pods share the host's network (--pod-network host): "
                    "NetworkPolicy is not enforced there (docs/networking.md)")
    return pods


def until(cluster, what: str, check, timeout: float = 10):
    """NetworkPolicy changes take effect within a moment, not at once (upstream too)."""
    return cluster.wait_for(check, timeout=timeout, interval=0.1, what=what)


ACCESS_NGINX = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: access-nginx
spec:
  podSelector:
    matchLabels:
      app: nginx
  ingress:
  - from:
    - podSelector:
        matchLabels:
          access: "true"
"""


def test_declare_network_policy_task(cluster, namespace):
    k = lambda *a, **kw: cluster.kubectl("-n", namespace, *a, **kw)  # noqa: E731
    k("create", "deployment", "nginx", "--image=demo:v1", "--port=80")
    assert k("expose", "deployment", "nginx", "--port=80").stdout.strip() == "service/nginx exposed"
    k("run", "busybox", *CLIENT)
    running(cluster, namespace, "busybox")
    nginx = cluster.wait_for(lambda: [p for p in cluster.kjson("get", "pods", "-n", namespace, "-l", "app=nginx")
                                      ["items"] if p["status"].get("podIP")], what="the nginx pod")[0]
    until(cluster, "nginx answering through its Service",
          lambda: fetch(cluster, namespace, "busybox", "http://nginx")["http://nginx"] == "ok")

    assert k("apply", "-f", "-", input=ACCESS_NGINX).stdout.strip() == \
        "networkpolicy.networking.k8s.io/access-nginx created"
    pol = cluster.kjson("get", "networkpolicy", "access-nginx", "-n", namespace)
    assert pol["spec"]["policyTypes"] == ["Ingress"]  # defaulted, as upstream
    # the unlabelled client is cut off: by Service name and by pod IP alike
    ip = nginx["status"]["podIP"]
    until(cluster, "the unlabelled client timing out",
          lambda: fetch(cluster, namespace, "busybox", "http://nginx", f"http://{ip}") ==
          {"http://nginx": "timeout", f"http://{ip}": "timeout"})
    # the node itself (kubelet probes, host processes) still reaches the pod
    with urllib.request.urlopen(f"http://{ip}/", timeout=2) as r:
        assert r.status == 200
    # a client with access=true gets through (its address is new to the policy)
    k("run", "busybox-access", "--labels=access=true", *CLIENT)
    running(cluster, namespace, "busybox-access")
    until(cluster, "the labelled client answered",
          lambda: fetch(cluster, namespace, "busybox-access", "http://nginx")["http://nginx"] == "ok")
    # labelling the first client lets it in too; deleting the policy opens the pod again
    k("label", "pod", "busybox", "access=true")
    until(cluster, "the relabelled client answered",
          lambda: fetch(cluster, namespace, "busybox", "http://nginx")["http://nginx"] == "ok")
    k("label", "pod", "busybox", "access-")
    until(cluster, "the unlabelled client cut off again",
          lambda: fetch(cluster, namespace, "busybox", "http://nginx")["http://nginx"] == "timeout")
    k("delete", "networkpolicy", "access-nginx")
    until(cluster, "the client answered without the policy",
          lambda: fetch(cluster, namespace, "busybox", "http://nginx")["http://nginx"] == "ok")


SERVERS = """
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec:
  containers:
  - name: web
    image: demo:v1
    ports: [{containerPort: 80, name: http}]
    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec:
  containers:
  - name: web
    image: demo:v1
    # also on 8081, which no port of the pod names
    command: ["sh", "-c", "PORT=8081 python3 serve.py & exec python3 serve.py"]
    ports: [{containerPort: 80, name: http}]
    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"""

CLIENT_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress}
spec:
  podSelector: {matchLabels: {role: client}}
  egress:
  - to:
    - ipBlock: {cidr: %(cidr)s, except: ["%(a)s/32"]}
    ports:
    - {port: http}
"""

WEB_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {role: client}}
"""


def test_default_deny_ipblock_named_port(cluster, namespace):
    k = lambda *a, **kw: cluster.kubectl("-n", namespace, *a, **kw)  # noqa: E731
    k("apply", "-f", "-", input=SERVERS)
    k("run", "client", "--labels=role=client", *CLIENT)
    pods = running(cluster, namespace, "web-a", "web-b", "client")
    a, b = pods["web-a"]["status"]["podIP"], pods["web-b"]["status"]["podIP"]
    urls = {"a": f"http://{a}/", "b": f"http://{b}/", "b8081": f"http://{b}:8081/"}
    blocked = {u: "timeout" for u in urls.values()}
    until(cluster, "default deny: every connection timing out",
          lambda: fetch(cluster, namespace, "client", *urls.values()) == blocked)
    # DNS (served on the node) still answers the isolated client
    out = k("exec", "client", "--", "python3", "-c",
            "import socket; print(socket.gethostbyname('kubernetes.default.svc.cluster.local'))")
    assert out.stdout.strip() == cluster.kjson("get", "svc", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    # the node's probes still reach the isolated servers: they stay Ready (a failing probe
    # would turn them unready within ~1 s), and so do host processes
    cluster.wait_for(lambda: all(c["status"] == "True" for n in ("web-a", "web-b") for c in
                                 cluster.kjson("get", "pod", n, "-n", namespace)["status"]["conditions"]
                                 if c["type"] == "Ready"), what="isolated servers Ready")
    for url in urls.values():
        with urllib.request.urlopen(url, timeout=2) as r:
            assert r.status == 200

    # the client may now send to its podCIDR less web-a, on the port named http
    # at the destination; web-b's ingress still denies: both ends must allow
    cidr = cluster.kjson("get", "node", pods["client"]["spec"]["nodeName"])["spec"]["podCIDR"]
    k("apply", "-f", "-", input=CLIENT_EGRESS % {"cidr": cidr, "a": a})
    time.sleep(0.5)  # what the egress policy changes would be in place by now
    assert fetch(cluster, namespace, "client", *urls.values()) == blocked
    k("apply", "-f", "-", input=WEB_INGRESS)
    until(cluster, "web-b:80 answering the client", lambda: fetch(cluster, namespace, "client", *urls.values()) == {
        urls["a"]: "timeout",  # except
        urls["b"]: "ok",
        urls["b8081"]: "timeout",  # not the named port
    })


def test_invalid_policy_rejected_as_upstream(cluster, namespace):
    bad = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad}
spec:
  podSelector: {}
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]
    ports: [{port: http, endPort: 90}]
"""
    out = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'The NetworkPolicy "bad" is invalid: \n'
        "* spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric\n"
        '* spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`')


def test_policies_across_agents_on_one_machine(cluster, namespace, tmp_path):
    """A second agent (its own bridge and podCIDR) has its own enforcer and table: a
    connection between pods of the two meets the client's node's egress rules and the
    server's node's ingress rules; stopping the agent removes its table."""
    import hashlib
    import subprocess

    from tests.conftest import start_agent, stop_agent

    k = lambda *a, **kw: cluster.kubectl("-n", namespace, *a, **kw)  # noqa: E731
    k("run", "srv", "--image=demo:v1", "--labels=app=web")
    first = running(cluster, namespace, "srv")["srv"]["spec"]["nodeName"]
    node, data = f"np-{namespace[-3:]}", tmp_path / "agent"
    agent = start_agent(cluster, node, data, log=tmp_path / "agent.log")
    table = "kybern-netpol-" + hashlib.sha1(str(data).encode()).hexdigest()[:8]
    try:
        cluster.wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in cluster.kjson(
            "get", "node", node)["status"].get("conditions", [])), timeout=30, what="the second node Ready")
        pinned = json.dumps({"spec": {"nodeName": node}})
        for name, labels in (("cli", "role=client"), ("other", "role=x")):
            k("run", name, f"--labels={labels}", f"--overrides={pinned}", *CLIENT)
        pods = running(cluster, namespace, "cli", "other")
        assert pods["cli"]["spec"]["nodeName"] == node != first
        url = f"http://{pods['srv']['status']['podIP']}/"
        k("apply", "-f", "-", input=WEB_INGRESS)  # app=web only from role=client
        until(cluster, "the server's node letting only role=client in",
              lambda: (fetch(cluster, namespace, "cli", url), fetch(cluster, namespace, "other", url)) ==
              ({url: "ok"}, {url: "timeout"}))
        k("apply", "-f", "-", input="""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cli-no-egress}
spec: {podSelector: {matchLabels: {role: client}}, policyTypes: [Egress]}
""")
        until(cluster, "the client's node stopping it",
              lambda: fetch(cluster, namespace, "cli", url) == {url: "timeout"})
        assert f"inet {table}" in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    finally:
        stop_agent(agent)
        cluster.kubectl("delete", "node", node, "--wait=false", check=False)
    assert f"inet {table}" not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
