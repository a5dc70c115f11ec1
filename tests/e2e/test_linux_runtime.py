"""The `linux` runtime (docs/node.md "The linux runtime"): an agent started with
`--runtime linux` runs a pod from an image imported from a root filesystem
tarball inside that filesystem (crun, overlayfs), with the pod's hostname,
logs, exec, exec probes, restarts with exit codes and a graceful delete.
Root and crun only; busybox-static's binary makes the image."""

from __future__ import annotations

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
    for applet in ("sh", "cat", "ls", "hostname", "sleep", "ps", "echo"):
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "os-release").write_text('NAME="kybern linux runtime test"\n')
    with tarfile.open(path, "w") as t:
        t.add(root, arcname=".")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("crun") is None or BUSYBOX is None,
                    reason="needs root, crun and a static busybox")
def test_linux_runtime_runs_a_pod_in_its_image(cluster, namespace, tmp_path):
    c, ns = cluster, namespace
    tar = tmp_path / "rootfs.tar"
    _image_tar(tar, tmp_path)
    # `kybern image import --data-dir D` fills the store of the node whose data dir is D/node
    subprocess.run([sys.executable, "-m", "kybern.cli.main", "image", "import", "linuxrt-test:1", str(tar),
                    "--data-dir", str(tmp_path)], check=True, capture_output=True)
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

        t0 = time.monotonic()  # SIGTERM reaches the trap: no wait for the 30 s grace period
        c.kubectl("delete", "pod", "chrooted", "-n", ns, "--timeout=20s")
        assert time.monotonic() - t0 < 15
        leftover = subprocess.run(["crun", "--root", str(tmp_path / "node" / "runtime" / "crun"), "list", "-q"],
                                  capture_output=True, text=True)
        assert leftover.stdout.strip() == ""
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()
    finally:
        stop_agent(agent)
        c.kubectl("delete", "node", NODE, "--wait=false", check=False)
