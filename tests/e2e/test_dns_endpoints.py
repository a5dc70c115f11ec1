"""Endpoints and EndpointSlices follow pods, and the cluster DNS answers for
Services and StatefulSet pods — driven with kubectl, queried with dnspython."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import pytest

pytestmark = pytest.mark.e2e

READY_POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: c
    image: demo:v1
    command: ["sh", "-c", "touch $KYBERN_ROOTFS/ready; exec sleep 3600"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      exec: {command: ["sh", "-c", "test -f $KYBERN_ROOTFS/ready"]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: http}]
"""

STATEFUL = """
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432, targetPort: pg}]
---
apiVersion: v1
kind: Service
metadata: {name: front}
spec:
  selector: {app: db}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: c
        image: demo:v1
        command: ["sleep", "3600"]
        ports: [{name: pg, containerPort: 5433}]
"""


def _ep(cluster, ns, name):
    return cluster.kjson("get", "-n", ns, "endpoints", name)


def _slice(cluster, ns, name):
    items = cluster.kjson("get", "-n", ns, "endpointslices", "-l", f"kubernetes.io/service-name={name}")["items"]
    return items[0] if len(items) == 1 else None


def test_endpoints_and_slices_follow_readiness(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=READY_POD)
    ep = cluster.wait_for(lambda: (e := _ep(cluster, namespace, "web")).get("subsets") and
                          e["subsets"][0].get("addresses") and e, what="a ready address")
    ss = ep["subsets"][0]
    assert ss["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]  # named targetPort resolved
    assert ss["addresses"][0]["targetRef"]["name"] == "web" and ss["addresses"][0]["nodeName"]
    assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]
    sl = cluster.wait_for(lambda: (s := _slice(cluster, namespace, "web")) and s.get("endpoints") and s)
    assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert sl["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert sl["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert sl["endpoints"][0]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert ":8080" in cluster.kubectl("describe", "svc", *ns, "web").stdout.split("Endpoints:")[1].split("\n")[0]

    cluster.kubectl("exec", *ns, "web", "--", "sh", "-c", "rm $KYBERN_ROOTFS/ready")
    ep = cluster.wait_for(lambda: (e := _ep(cluster, namespace, "web")).get("subsets") and
                          e["subsets"][0].get("notReadyAddresses") and e, what="a not-ready address")
    assert "addresses" not in ep["subsets"][0]
    cluster.wait_for(lambda: (s := _slice(cluster, namespace, "web")) and
                     s["endpoints"][0]["conditions"]["ready"] is False, what="slice not ready")

    cluster.kubectl("delete", *ns, "pod", "web", "--grace-period=1")
    cluster.wait_for(lambda: not _ep(cluster, namespace, "web").get("subsets"), what="no subsets")
    placeholder = cluster.wait_for(lambda: (s := _slice(cluster, namespace, "web")) and
                                   not s.get("endpoints") and s, what="placeholder slice")
    assert not placeholder.get("ports")


def _dns_server(cluster):
    ep = cluster.kjson("get", "-n", "kube-system", "endpoints", "kube-dns")
    ss = ep["subsets"][0]
    port = next(p["port"] for p in ss["ports"] if p["protocol"] == "UDP")
    return ss["addresses"][0]["ip"], port


def _ask(server, name, rdtype="A"):
    r = dns.query.udp(dns.message.make_query(name, rdtype), server[0], port=server[1], timeout=3)
    return dns.rcode.to_text(r.rcode()), sorted(x.to_text() for rr in r.answer for x in rr)


def test_cluster_dns_answers_for_services_and_pods(cluster, namespace):
    kd = cluster.kjson("get", "-n", "kube-system", "svc", "kube-dns")
    assert kd["spec"]["clusterIP"] == "10.96.0.10"
    assert [(p["name"], p["port"], p["protocol"]) for p in kd["spec"]["ports"]] == \
        [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    server = _dns_server(cluster)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=STATEFUL)
    def ready_ips():
        pods = cluster.kjson("get", "-n", namespace, "pods", "-l", "app=db")["items"]
        return sorted(p["status"]["podIP"] for p in pods if p["status"].get("podIP") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []))

    ips = cluster.wait_for(lambda: len(ips := ready_ips()) == 2 and ips, what="two ready pods", timeout=60)
    zone = f"{namespace}.svc.cluster.local."
    front_ip = cluster.kjson("get", "-n", namespace, "svc", "front")["spec"]["clusterIP"]
    assert _ask(server, f"front.{zone}") == ("NOERROR", [front_ip])
    # headless: the ready pods' addresses (the DNS follows the slices within moments)
    cluster.wait_for(lambda: _ask(server, f"db.{zone}") == ("NOERROR", ips), what="headless A")
    pod0 = cluster.kjson("get", "-n", namespace, "pod", "db-0")["status"]["podIP"]
    assert _ask(server, f"db-0.db.{zone}") == ("NOERROR", [pod0])
    rcode, srv = _ask(server, f"_pg._tcp.db.{zone}", "SRV")
    assert rcode == "NOERROR" and sorted(srv) == [f"0 50 5433 db-{i}.db.{zone}" for i in (0, 1)]
    assert _ask(server, f"_http._tcp.front.{zone}", "SRV") == ("NOERROR", [f"0 100 80 front.{zone}"])
    assert _ask(server, f"nope.{zone}")[0] == "NXDOMAIN"
    assert _ask(server, f"{pod0.replace('.', '-')}.{namespace}.pod.cluster.local.") == ("NOERROR", [pod0])
