"""The "Configure a Security Context for a Pod or Container" walkthrough with the real
kubectl: runAsUser/runAsGroup/supplementalGroups/fsGroup as the container's process,
`kubectl exec` sessions and the files they write see them, an emptyDir given to the
fsGroup, a termination message written by a non-root program. As root only (the
process runtime switches users only then)."""

from __future__ import annotations

import os
import re

import pytest

from tests.e2e.test_pod_status_kubectl import apply, pod, row, sh

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.geteuid() != 0, reason="users are switched only when the agent runs as root")]


def ids(text: str) -> tuple[int, int, set[int]]:
    """uid, gid and groups of `id`'s output (names, when the host has them, dropped)."""
    m = re.search(r"uid=(\d+)\S*\s+gid=(\d+)\S*(?:\s+groups=(\S+))?", text)
    assert m, text
    groups = {int(g.split("(")[0]) for g in (m.group(3) or "").split(",") if g}
    return int(m.group(1)), int(m.group(2)), groups


def test_security_context_demo(cluster, namespace):
    sc = {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]}
    demo = sh("sec-ctx-demo", "id; sleep 3600", volumeMounts=[{"name": "sec-ctx-vol", "mountPath": "/data/demo"}],
              securityContext={"allowPrivilegeEscalation": False})
    apply(cluster, namespace, pod("security-context-demo", [demo], securityContext=sc,
                                  volumes=[{"name": "sec-ctx-vol", "emptyDir": {}}]))
    cluster.wait_for(lambda: row(cluster, namespace, "security-context-demo")[2] == "Running", timeout=20,
                     what="Running")

    def kx(*cmd: str) -> str:
        return cluster.kubectl("exec", "security-context-demo", "-n", namespace, "--", *cmd).stdout

    # the container's own process, and a kubectl exec session, run as 1000:3000 with 2000, 3000, 4000
    main = cluster.wait_for(lambda: cluster.kubectl("logs", "security-context-demo", "-n", namespace).stdout,
                            timeout=10, what="the main process's id")
    assert ids(main) == (1000, 3000, {2000, 3000, 4000})
    assert ids(kx("id")) == (1000, 3000, {2000, 3000, 4000})
    status = kx("sh", "-c", "grep -E '^(Uid|Gid):' /proc/$$/status")
    assert re.search(r"^Uid:\s+1000\s+1000\s+1000\s+1000$", status, re.MULTILINE), status
    assert re.search(r"^Gid:\s+3000\s+3000\s+3000\s+3000$", status, re.MULTILINE), status

    # the emptyDir belongs to the fsGroup, setgid, writable by the group: a new file is 1000:2000
    mode, _, _, group = kx("ls", "-ldn", "/data/demo").split()[:4]
    assert mode.startswith("drwxrws") and group == "2000", mode
    kx("sh", "-c", "echo hello > /data/demo/testfile")
    owner, group = kx("ls", "-ln", "/data/demo/testfile").split()[2:4]
    assert (owner, group) == ("1000", "2000")


def test_a_non_root_program_writes_its_termination_message(cluster, namespace):
    apply(cluster, namespace, pod("nonroot-says-why", [sh("app", "echo bye > /dev/termination-log; exit 1")],
                                  securityContext={"runAsUser": 1000, "runAsNonRoot": True},
                                  restartPolicy="Never"))

    def message() -> str | None:
        cs = cluster.kjson("get", "pod", "nonroot-says-why", "-n", namespace)["status"].get("containerStatuses")
        term = cs[0]["state"].get("terminated") if cs else None
        return term.get("message") if term else None

    assert cluster.wait_for(message, timeout=20, what="the termination message") == "bye\n"
