"""kubectl's typed commands send protobuf bodies; the objects they create must be
the ones a JSON client would have created."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_typed_kubectl_commands(cluster, namespace):
    ns = ["-n", namespace]
    k = cluster.kubectl
    k("create", "configmap", "x", "--from-literal=a=b", *ns)
    k("create", "deployment", "web", "--image=demo:v1", "--replicas=3", *ns,
      "--", "python3", "-m", "http.server", "0")
    k("create", "secret", "generic", "s", "--from-literal=k=v", *ns)
    k("create", "service", "clusterip", "s", "--tcp=80:8080", *ns)
    k("scale", "deployment", "web", "--replicas=2", *ns)
    ns_name = f"{namespace}-n"
    k("create", "namespace", ns_name)
    try:
        cm = cluster.kjson("get", "configmap", "x", *ns)
        assert cm["data"] == {"a": "b"} and cm["metadata"]["namespace"] == namespace

        sec = cluster.kjson("get", "secret", "s", *ns)
        assert sec["data"] == {"k": "dg=="} and sec["type"] == "Opaque"

        dep = cluster.kjson("get", "deployment", "web", *ns)
        assert dep["metadata"]["labels"] == {"app": "web"}
        assert dep["spec"]["replicas"] == 2
        assert dep["spec"]["selector"] == {"matchLabels": {"app": "web"}}
        assert dep["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        assert (c["name"], c["image"], c["command"]) == ("demo", "demo:v1",
                                                         ["python3", "-m", "http.server", "0"])
        assert dep["spec"]["strategy"]["type"] == "RollingUpdate"   # defaulted from `strategy: {}`

        svc = cluster.kjson("get", "service", "s", *ns)
        assert svc["spec"]["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP",
                                         "targetPort": 8080}]
        assert svc["spec"]["selector"] == {"app": "s"} and svc["spec"]["type"] == "ClusterIP"

        n = cluster.kjson("get", "namespace", ns_name)
        assert n["status"]["phase"] == "Active"
    finally:
        k("delete", "namespace", ns_name, "--wait=false", check=False)
