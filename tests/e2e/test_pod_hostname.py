"""A pod's hostname, as on a kubelet: its own UTS namespace (root) with
spec.hostname or the pod's name, seen by the container, `kubectl exec` and
exec probes; a hostNetwork pod keeps the node's. The StatefulSet Basics
tutorial checks exactly this (`kubectl exec web-0 -- hostname`)."""

from __future__ import annotations

import json
import os
import socket

import pytest

from tests.conftest import agent_namespace_fds

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a UTS namespace per pod needs root")


def pod(name: str, **spec: object) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 1, **spec, "containers": [{
            "name": "c", "image": "demo:v1",
            # the main process writes what it sees; an exec probe checks it from a second process
            "command": ["sh", "-c", "hostname > /tmp/seen-$$; cat /tmp/seen-$$; exec sleep 3600"],
            "readinessProbe": {"exec": {"command": ["sh", "-c", "test \"$(hostname)\" != ''"]},
                               "periodSeconds": 1}}]}})


def test_hostname_is_the_pods(cluster, namespace):
    host = socket.gethostname()
    long_name = "a" * 62 + "-b"  # 64 characters: cut to 63, and the trailing '-' dropped
    for name, extra in (("named", {}), ("custom", {"hostname": "web-0", "subdomain": "nginx"}),
                        (long_name, {}), ("onhost", {"hostNetwork": True})):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pod(name, **extra))
    for name in ("named", "custom", long_name, "onhost"):
        cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", f"pod/{name}", "--timeout=60s")

    def exec_hostname(name: str) -> str:
        return cluster.kubectl("exec", "-n", namespace, name, "--", "hostname").stdout.strip()

    assert exec_hostname("named") == "named"
    assert cluster.kubectl("logs", "-n", namespace, "named").stdout.strip() == "named"  # the main process too
    assert exec_hostname("custom") == "web-0"
    assert exec_hostname(long_name) == "a" * 62
    assert exec_hostname("onhost") == host
    assert socket.gethostname() == host  # setting the pods' names left the node's alone
    # a pod's UTS namespace goes with it (the hostNetwork pod never had one): the agent
    # holds each by an fd
    uts_fds = agent_namespace_fds(cluster, "uts")
    before = uts_fds()
    assert before >= 3
    cluster.kubectl("delete", "pod", "-n", namespace, "named", "custom", long_name, "onhost", "--wait=false")
    cluster.wait_for(lambda: uts_fds() <= before - 3, timeout=30, what="the three pods' UTS namespaces dropped")
