"""The `linux` runtime (docs/node.md "The linux runtime"): an agent started with
`--runtime linux` runs a pod from an image imported from a root filesystem
tarball inside that filesystem (crun, overlayfs), with the pod's hostname,
logs, exec, exec probes, restarts with exit codes and a graceful delete; and a
second pod with the securityContext applied (capabilities, no_new_privs, seccomp,
read-only root, privileged), the image's user, runAsNonRoot against it, and one
IPC namespace and /dev/shm for the pod's containers.
Root and crun only; busybox-static's binary makes the image."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import start_agent, stop_agent

pytestmark = pytest.mark.e2e

BUSYBOX = shutil.which("busybox")
if BUSYBOX is not None and b".interp" in Path(BUSYBOX).read_bytes():  # dynamically linked: not busybox-static
    BUSYBOX = None
NODE = "linuxrt-1"


def _image_tar(path, tmp_path):
    """A root filesystem tarball: busybox (static), its applets as symlinks, an os-release."""
    root = tmp_path / "img"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "cat", "ls", "hostname", "sleep", "ps", "echo", "grep", "touch", "id", "readlink"):
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "os-release").write_text('NAME="kybern linux runtime test"\n')
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nappgrp:x:2345:\nextra:x:3456:app\n")
    with tarfile.open(path, "w") as t:
        t.add(root, arcname=".")


def _docker_archive(path, layer, user):
    """A `docker save` archive of one layer whose image config names `user`."""
    config = json.dumps({"os": "linux", "config": {"User": user}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [], "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as t:
        for name, data in (("config.json", config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        t.add(layer, arcname="layer.tar")


def _secured_pod(ns):
    """Containers with the securityContext settings the runtime applies, each printing
    what a user would look at."""
    keep = "; exec sleep 1000"
    locked = {"capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"], "drop": ["chown"]},
              "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
              "seccompProfile": {"type": "RuntimeDefault"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "secured", "namespace": ns},
            "spec": {"nodeName": NODE, "tolerations": [{"key": "linuxrt", "operator": "Exists"}],
                     "terminationGracePeriodSeconds": 1, "volumes": [{"name": "scratch", "emptyDir": {}}],
                     "containers": [
                         {"name": "locked", "image": "linuxrt-test:1", "securityContext": locked,
                          "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                          "command": ["sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status;"
                                      " touch /file; echo shared > /dev/shm/from-locked;"
                                      " touch /scratch/f && echo volume writable" + keep]},
                         {"name": "user", "image": "linuxrt-user:1", "command": ["sh", "-c", "id" + keep]},
                         {"name": "priv", "image": "linuxrt-test:1", "securityContext": {"privileged": True},
                          "command": ["sh", "-c", "grep -E '^CapEff:' /proc/self/status;"
                                      " grep ' /sys ' /proc/mounts" + keep]},
                         {"name": "nonroot", "image": "linuxrt-user:1", "command": ["id"],
                          "securityContext": {"runAsNonRoot": True}},
                         {"name": "profiled", "image": "linuxrt-test:1", "command": ["sh", "-c", "mkdir /m" + keep],
                          "securityContext": {"seccompProfile": {"type": "Localhost",
                                                                 "localhostProfile": "profiles/no-mkdir.json"}}}]}}


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("crun") is None or BUSYBOX is None,
                    reason="needs root, crun and a static busybox")
def test_linux_runtime_runs_a_pod_in_its_image(cluster, namespace, tmp_path):
    c, ns = cluster, namespace
    tar = tmp_path / "rootfs.tar"
    _image_tar(tar, tmp_path)
    # `kybern image import --data-dir D` fills the store of the node whose data dir is D/node
    _docker_archive(tmp_path / "user.tar", tar, "app:ignored")  # the kubelet passes on the user part only
    imports = [subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "image", "import", ref, str(src),
                                 "--data-dir", str(tmp_path)], stdout=subprocess.DEVNULL)
               for ref, src in (("linuxrt-test:1", tar), ("linuxrt-user:1", tmp_path / "user.tar"))]
    assert [p.wait() for p in imports] == [0, 0]
    agent = start_agent(c, NODE, tmp_path / "node", "--runtime", "linux", "--pod-network", "host",
                        log=tmp_path / "agent.log")
    try:
        c.wait_for(lambda: "Ready" in c.kubectl("get", "node", NODE, "--no-headers", check=False).stdout.split(),
                   timeout=40, what="linux node Ready")
        c.kubectl("taint", "node", NODE, "linuxrt=only:NoSchedule")  # the session's other pods stay off it
        assert c.kjson("get", "node", NODE)["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("linux://")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "chrooted", "namespace": ns},
               "spec": {"nodeName": NODE, "tolerations": [{"key": "linuxrt", "operator": "Exists"}],
                        "restartPolicy": "OnFailure", "containers": [
                            {"name": "main", "image": "linuxrt-test:1", "command": ["sh", "-c",
                             "cat /etc/os-release; ls /; trap 'echo got TERM; exit 0' TERM; "
                             "while true; do sleep 0.2; done"],
                             "readinessProbe": {"exec": {"command": ["cat", "/etc/os-release"]},
                                                "periodSeconds": 1}},
                            {"name": "fails", "image": "linuxrt-test:1", "command": ["sh", "-c", "exit 3"]},
                            {"name": "missing", "image": "linuxrt-test:1", "command": ["nope"]}]}}
        c.kubectl("apply", "-f", "-", input=json.dumps(pod))
        # a Localhost seccomp profile, where the kubelet keeps them: <its root dir>/seccomp
        (tmp_path / "node" / "seccomp" / "profiles").mkdir(parents=True)
        (tmp_path / "node" / "seccomp" / "profiles" / "no-mkdir.json").write_text(json.dumps(
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"],
                                                             "action": "SCMP_ACT_ERRNO"}]}))
        c.kubectl("apply", "-f", "-", input=json.dumps(_secured_pod(ns)))
        hostns = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hostns", "namespace": ns},
                  "spec": {"nodeName": NODE, "tolerations": [{"key": "linuxrt", "operator": "Exists"}],
                           "hostPID": True, "hostIPC": True, "restartPolicy": "Never", "containers": [
                               {"name": "c", "image": "linuxrt-test:1",
                                "command": ["sh", "-c", "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc"]}]}}
        c.kubectl("apply", "-f", "-", input=json.dumps(hostns))
        shared = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sharedpid", "namespace": ns},
                  "spec": {"nodeName": NODE, "tolerations": [{"key": "linuxrt", "operator": "Exists"}],
                           "shareProcessNamespace": True, "terminationGracePeriodSeconds": 1, "containers": [
                               {"name": name, "image": "linuxrt-test:1", "command": ["sleep", secs]}
                               for name, secs in (("a", "1001"), ("b", "1002"))]}}
        c.kubectl("apply", "-f", "-", input=json.dumps(shared))

        def main_ready():
            st = c.kjson("get", "pod", "chrooted", "-n", ns)["status"]
            return any(s["name"] == "main" and s["ready"] for s in st.get("containerStatuses", []))
        c.wait_for(main_ready, timeout=30, what="main ready (exec probe)")
        def main_log():  # all of `ls /` (ends with sys) once the log has caught up
            lines = c.kubectl("logs", "chrooted", "-c", "main", "-n", ns).stdout.splitlines()
            return lines if "sys" in lines else None
        logs = c.wait_for(main_log, timeout=10, what="main's output in its log")
        assert logs[0] == 'NAME="kybern linux runtime test"'  # the image's file, not the host's
        # its root is the image's tree plus what the runtime mounts: no /usr, /home, ... of the host
        assert set(logs[1:]) <= {"bin", "etc", "dev", "proc", "sys", "var", "run", "tmp"}, logs
        assert "bin" in logs[1:]
        assert c.kubectl("exec", "chrooted", "-c", "main", "-n", ns, "--", "hostname").stdout.strip() == "chrooted"
        ps = c.kubectl("exec", "chrooted", "-c", "main", "-n", ns, "--", "ps").stdout.splitlines()
        assert ps[1].split()[0] == "1" and "sh -c" in ps[1]  # its own PID namespace

        def failed_once(name):
            st = c.kjson("get", "pod", "chrooted", "-n", ns)["status"]
            s = next((s for s in st.get("containerStatuses", []) if s["name"] == name), {})
            return s.get("restartCount", 0) >= 1 and s.get("lastState", {}).get("terminated")
        term = c.wait_for(lambda: failed_once("fails"), timeout=30, what="container fails restarted")
        assert term["exitCode"] == 3 and term["reason"] == "Error"
        # a command the image does not have: a StartError, as runc's under containerd
        term = c.wait_for(lambda: failed_once("missing"), timeout=30, what="container missing restarted")
        assert (term["reason"], term["exitCode"]) == ("StartError", 128)
        assert term["message"] == 'exec: "nope": executable file not found in $PATH'

        _check_secured(c, ns)
        # hostPID, hostIPC: the node's namespaces (this test's own)
        ours = [os.readlink(f"/proc/self/ns/{kind}") for kind in ("pid", "ipc")]
        c.wait_for(lambda: c.kubectl("logs", "hostns", "-n", ns, check=False).stdout.splitlines() == ours,
                   timeout=20, what="hostns's namespaces")
        # shareProcessNamespace: each container sees the other's processes; PID 1 is the pod's
        def both():
            ps = c.kubectl("exec", "sharedpid", "-c", "a", "-n", ns, "--", "ps", check=False).stdout
            return ps if "sleep 1001" in ps and "sleep 1002" in ps else None
        ps = c.wait_for(both, timeout=20, what="both containers in one PID namespace").splitlines()
        assert ps[1].split() == ["1", "root", "/pause"], ps

        t0 = time.monotonic()  # SIGTERM reaches the trap: no wait for the 30 s grace period
        c.kubectl("delete", "pod", "chrooted", "secured", "sharedpid", "-n", ns, "--timeout=20s")
        assert time.monotonic() - t0 < 15
        leftover = subprocess.run(["crun", "--root", str(tmp_path / "node" / "runtime" / "crun"), "list", "-q"],
                                  capture_output=True, text=True)
        assert leftover.stdout.strip() == ""
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()
    finally:
        stop_agent(agent)
        c.kubectl("delete", "node", NODE, "--wait=false", check=False)


def _check_secured(c, ns):
    def logs(container, lines):  # once it has written them all
        out = c.kubectl("logs", "secured", "-c", container, "-n", ns, check=False).stdout.splitlines()
        return out if len(out) >= lines else None
    locked = c.wait_for(lambda: logs("locked", 6), timeout=20, what="locked's output")
    # containerd's defaults + NET_ADMIN + SYS_TIME - CHOWN; no_new_privs; a seccomp filter
    status = dict(line.split(":\t", 1) for line in locked if ":\t" in line)
    assert status["CapEff"] == status["CapBnd"] == "00000000aa0435fa", locked
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2"), locked
    assert "touch: /file: Read-only file system" in locked and "volume writable" in locked, locked
    # the image's user, resolved through its /etc/passwd and /etc/group
    user = c.wait_for(lambda: logs("user", 1), timeout=20, what="user's output")
    assert user == ["uid=1234(app) gid=2345(appgrp) groups=2345(appgrp),3456(extra)"], user
    priv = c.wait_for(lambda: logs("priv", 2), timeout=20, what="priv's output")
    ours = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapBnd:"))
    assert priv[0] == "CapEff:\t" + ours.split()[1], priv  # every capability the agent has
    assert " rw," in priv[1], priv  # /sys writable
    # the pod's containers share its IPC namespace and /dev/shm; another pod's is its own
    ipc = [c.kubectl("exec", pod, "-c", name, "-n", ns, "--", "readlink", "/proc/self/ns/ipc").stdout.strip()
           for pod, name in (("secured", "locked"), ("secured", "user"), ("chrooted", "main"))]
    assert ipc[0] == ipc[1] != ipc[2], ipc
    shm = c.kubectl("exec", "secured", "-c", "user", "-n", ns, "--", "cat", "/dev/shm/from-locked").stdout
    assert shm == "shared\n"
    assert c.wait_for(lambda: logs("profiled", 1), timeout=20, what="profiled's output") == [
        "mkdir: can't create directory '/m': Operation not permitted"]
    # runAsNonRoot cannot be checked against a user name: refused, as the kubelet does
    pod = c.kjson("get", "pod", "secured", "-n", ns)
    waiting = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "nonroot")["state"]["waiting"]
    assert waiting == {"reason": "CreateContainerConfigError", "message": (
        "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root "
        f'(pod: "secured_{ns}({pod["metadata"]["uid"]})", container: nonroot)')}
