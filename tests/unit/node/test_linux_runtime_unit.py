"""The linux runtime's pure parts: the OCI spec it hands crun, and the lookup of a
command inside a container's files (symlinks resolved inside the container, never
on the host)."""

from __future__ import annotations

import os

from kybern.node.runtimes.base import ContainerConfig, Mount
from kybern.node.runtimes.linux import find_executable, oci_spec


def test_spec_user_mounts_and_namespaces():
    cfg = ContainerConfig(name="c", image="x", run_as_user=1000, run_as_group=2000, supplemental_groups=[3000],
                          mounts=[Mount("/data/sub", "/h/sub", readonly=True), Mount("/data", "/h/data")])
    spec = oci_spec(cfg, ["sh"], {"PATH": "/bin"}, "/work", "/r/rootfs", "/r/hostname")
    proc = spec["process"]
    assert proc["user"] == {"uid": 1000, "gid": 2000, "additionalGids": [3000]}
    assert proc["cwd"] == "/work" and proc["env"] == ["PATH=/bin"]
    binds = [(m["destination"], m["options"][-1]) for m in spec["mounts"] if m["type"] == "bind"]
    assert binds == [("/etc/hostname", "rw"), ("/data", "rw"), ("/data/sub", "ro")]  # parents first
    # the pod's network and UTS namespaces are crun's own (it starts in them): not listed
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["pid", "ipc", "mount"]
    root = oci_spec(ContainerConfig(name="c", image="x"), ["sh"], {}, "/", "/r", "/h")["process"]
    assert "CAP_NET_BIND_SERVICE" in root["capabilities"]["effective"] and root["user"] == {"uid": 0, "gid": 0}


def test_find_executable_resolves_inside_the_container(tmp_path):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_text("")
    os.chmod(root / "bin" / "busybox", 0o755)
    os.symlink("/bin/busybox", root / "bin" / "sh")  # absolute: the container's /bin/busybox
    os.symlink("/usr/bin/env", root / "bin" / "env")  # exists on the host only
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "run.sh").write_text("")
    os.chmod(vol / "run.sh", 0o755)
    mounts = [Mount("/scripts", str(vol))]
    assert find_executable("sh", str(root), "/", "/usr/bin:/bin", mounts)
    assert not find_executable("env", str(root), "/", "/usr/bin:/bin", mounts)
    assert find_executable("/scripts/run.sh", str(root), "/", "/bin", mounts)
    assert find_executable("./run.sh", str(root), "/scripts", "/bin", mounts)
    assert not find_executable("nope", str(root), "/", "/bin", mounts)
