"""Volumes at their absolute mountPaths in the process runtime (root: a mount
namespace per container), as the kubernetes.io tasks use them: `ls /etc/config`
for a ConfigMap, a shared emptyDir at `/pod-data`, `cat /etc/resolv.conf`.
The host sees none of it."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import agent_namespace_fds

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace per container needs root")


def manifest(namespace: str) -> str:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
          "data": {"greeting": "hello from a configmap", "SPECIAL_LEVEL": "very"}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two-containers"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "volumes": [{"name": "shared-data", "emptyDir": {}},
                    {"name": "config", "configMap": {"name": "settings"}},
                    {"name": "hostmnt", "emptyDir": {}}],
        "containers": [
            {"name": "writer", "image": "demo:v1",
             "command": ["sh", "-c", ("echo written by the writer > /pod-data/index.html; "
                                     "cat /etc/config/greeting; echo; ls /etc/config; exec sleep 3600")],
             "volumeMounts": [{"name": "shared-data", "mountPath": "/pod-data"},
                              {"name": "config", "mountPath": "/etc/config", "readOnly": True}]},
            {"name": "reader", "image": "demo:v1",
             # /mnt exists on the host: the volume is bound over it, the host's stays as it was
             "command": ["sh", "-c", ("while ! cat /usr/share/web/index.html 2>/dev/null; do sleep 0.2; done; "
                                     "touch /mnt/from-reader; ls /mnt; exec sleep 3600")],
             "readinessProbe": {"exec": {"command": ["cat", "/usr/share/web/index.html"]}, "periodSeconds": 1},
             "volumeMounts": [{"name": "shared-data", "mountPath": "/usr/share/web"},
                              {"name": "hostmnt", "mountPath": "/mnt"}]}]}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [cm, pod]})


def test_volumes_at_their_mount_paths(cluster, namespace):
    host_mnt = set(os.listdir("/mnt"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest(namespace))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/two-containers", "--timeout=60s")

    def logs(c: str) -> str:
        return cluster.kubectl("logs", "-n", namespace, "two-containers", "-c", c).stdout

    cluster.wait_for(lambda: "SPECIAL_LEVEL" in logs("writer"), timeout=20, what="the writer's output")
    assert logs("writer").splitlines() == ["hello from a configmap", "SPECIAL_LEVEL", "greeting"]
    cluster.wait_for(lambda: "from-reader" in logs("reader"), timeout=20, what="the reader's output")
    assert logs("reader").splitlines() == ["written by the writer", "from-reader"]

    def exec_(c: str, *cmd: str, check: bool = True) -> str:
        return cluster.kubectl("exec", "-n", namespace, "two-containers", "-c", c, "--", *cmd, check=check).stdout

    # kubectl exec enters the same mounts, in the container's working dir
    assert exec_("reader", "cat", "/usr/share/web/index.html") == "written by the writer\n"
    assert exec_("writer", "sh", "-c", "cat etc/config/greeting; echo; pwd").splitlines()[0] == "hello from a configmap"
    assert exec_("writer", "cat", "/etc/config/greeting") == "hello from a configmap"
    # readOnly is enforced
    r = cluster.kubectl("exec", "-n", namespace, "two-containers", "-c", "writer", "--",
                        "sh", "-c", "echo x > /etc/config/new", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    # the pod's resolv.conf is the container's /etc/resolv.conf (dnsPolicy ClusterFirst)
    resolv = exec_("writer", "cat", "/etc/resolv.conf")
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    # so the C library's resolver in the pod finds Services by name (the "Debugging DNS
    # Resolution" task: nslookup kubernetes.default)
    kubernetes_ip = json.loads(cluster.kubectl("get", "service", "kubernetes", "-n", "default", "-o", "json").stdout)[
        "spec"]["clusterIP"]
    assert exec_("writer", "getent", "hosts", "kubernetes.default").split()[0] == kubernetes_ip

    # the host saw nothing of it
    assert not os.path.exists("/pod-data") and not os.path.exists("/etc/config/greeting")
    assert set(os.listdir("/mnt")) == host_mnt
    with open("/etc/resolv.conf") as f:
        assert f"{namespace}.svc.cluster.local" not in f.read()
    with open("/proc/self/mountinfo") as f:
        assert "/pod-data" not in f.read()

    # each container's namespace is held by an fd of the agent until the container goes
    mnt_fds = agent_namespace_fds(cluster, "mnt")
    before = mnt_fds()
    assert before >= 2
    cluster.kubectl("delete", "pod", "-n", namespace, "two-containers", "--wait=false")
    cluster.wait_for(lambda: mnt_fds() <= before - 2, timeout=30, what="the two containers' mount namespaces dropped")


def test_a_memory_emptydir_is_a_tmpfs_of_its_size(cluster, namespace):
    """emptyDir medium: Memory with a sizeLimit, as the kubelet mounts it: a tmpfs of
    that size (df shows it, a write past it fails), shared by the pod's containers,
    invisible on the host and gone with the pod."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ramdisk"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}],
        "containers": [
            {"name": c, "image": "demo:v1", "command": ["sleep", "3600"],
             "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]} for c in ("a", "b")]}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/ramdisk", "--timeout=60s")

    def exec_(c: str, script: str, check: bool = True):
        return cluster.kubectl("exec", "-n", namespace, "ramdisk", "-c", c, "--", "sh", "-c", script, check=check)

    df = exec_("a", "df -k /cache | tail -1").stdout.split()
    assert df[0] == "tmpfs" and int(df[1]) == 8 * 1024, df  # 1K-blocks
    r = exec_("a", "dd if=/dev/zero of=/cache/big bs=1M count=16", check=False)
    assert r.returncode != 0 and "No space left on device" in r.stderr
    exec_("a", "rm /cache/big; echo shared > /cache/note")
    assert exec_("b", "cat /cache/note").stdout == "shared\n"
    volume_dir = next(p for p in exec_("a", "cat /proc/self/mountinfo").stdout.splitlines() if " /cache " in p)
    assert "tmpfs" in volume_dir
    with open("/proc/self/mountinfo") as f:  # the host's mount table holds no pod tmpfs
        assert "_volumes/cache" not in f.read()
    cluster.kubectl("delete", "pod", "-n", namespace, "ramdisk", "--wait=true", "--timeout=30s")


def test_secrets_and_tokens_stay_in_memory(cluster, namespace):
    """As the kubelet keeps them ("the secret is not written to disk storage"): a
    secret volume and the service account token volume are on a tmpfs; nothing of
    the secret reaches the cluster's directory on disk."""
    value = "s3cr3t-" + namespace
    cluster.kubectl("create", "secret", "generic", "creds", "-n", namespace, f"--from-literal=password={value}")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
        "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds", "readOnly": True}]}]}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/reader", "--timeout=60s")

    def exec_(script: str) -> str:
        return cluster.kubectl("exec", "-n", namespace, "reader", "--", "sh", "-c", script).stdout

    assert exec_("cat /etc/creds/password") == value
    assert exec_("stat -f -c %T /etc/creds /var/run/secrets/kubernetes.io/serviceaccount").split() == ["tmpfs"] * 2
    r = subprocess.run(["grep", "-rlF", value, str(cluster.dir)], capture_output=True, text=True)
    assert r.stdout == "", f"the secret is on disk: {r.stdout}"
    cluster.kubectl("delete", "pod", "-n", namespace, "reader", "--wait=true", "--timeout=30s")
    r = subprocess.run(["grep", "-rlF", value, "/dev/shm/kybern"], capture_output=True, text=True)
    assert r.stdout == "", f"left after the pod: {r.stdout}"
