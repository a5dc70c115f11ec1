"""The linux runtime's pure parts: the OCI spec it hands crun (user, capabilities,
privileged, read-only root, no_new_privs, seccomp, namespaces), what the kubelet's
side puts in the container config, and the lookup of a command inside a container's
files (symlinks resolved inside the container, never on the host)."""

from __future__ import annotations

import json
import os

import pytest

from kybern.node.containers import process_identity, run_as_non_root_refusal, security_options
from kybern.node.runtimes.base import ContainerConfig, ContainerError, Mount
from kybern.node.runtimes.linux import all_capabilities, capabilities, find_executable, oci_spec, resolve_user


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


def _spec(**kw):
    return oci_spec(ContainerConfig(name="c", image="x", **kw), ["sh"], {}, "/", "/r", "/h")


def test_capabilities_add_drop_all_and_prefixes():
    caps = _spec(capabilities_add=["net_admin", "CAP_SYS_TIME", "NOT_A_CAP"],
                 capabilities_drop=["chown"])["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    assert {"CAP_NET_ADMIN", "CAP_SYS_TIME"} <= set(caps["bounding"])
    assert "CAP_CHOWN" not in caps["bounding"] and not any("NOT_A_CAP" in c for c in caps["bounding"])
    # drop ALL then add one: only that one, as containerd orders them
    assert capabilities(ContainerConfig(name="c", image="x", capabilities_drop=["ALL"],
                                        capabilities_add=["NET_BIND_SERVICE"])) == ["CAP_NET_BIND_SERVICE"]
    everything = capabilities(ContainerConfig(name="c", image="x", capabilities_add=["all"],
                                              capabilities_drop=["KILL"]))
    assert everything == [c for c in all_capabilities() if c != "CAP_KILL"]


def test_privileged_readonly_root_and_no_new_privileges():
    spec = _spec(privileged=True, seccomp={"type": "RuntimeDefault"})
    assert spec["process"]["capabilities"]["bounding"] == all_capabilities()
    linux = spec["linux"]
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux and "seccomp" not in linux
    assert any(d["path"] == "/dev/null" for d in linux["devices"])  # the host's devices
    sysfs = next(m for m in spec["mounts"] if m["type"] == "sysfs")
    assert "ro" not in sysfs["options"]
    plain = _spec(readonly_rootfs=True, no_new_privs=True)
    assert plain["root"]["readonly"] and plain["process"]["noNewPrivileges"]
    assert "ro" in next(m for m in plain["mounts"] if m["type"] == "sysfs")["options"]
    assert plain["linux"]["maskedPaths"] and "seccomp" not in plain["linux"]  # Unconfined: the kubelet's default


def test_namespaces_host_and_pod_shared():
    spec = _spec(pid_namespace="node", ipc_namespace="node")
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["mount"]  # crun's: the host's
    spec = oci_spec(ContainerConfig(name="c", image="x", pid_namespace="pod"), ["sh"], {}, "/", "/r", "/h",
                    ipc="/proc/9/fd/3", shm="/pods/p/shm", pid="/proc/10/ns/pid")
    assert spec["linux"]["namespaces"] == [{"type": "pid", "path": "/proc/10/ns/pid"},
                                           {"type": "ipc", "path": "/proc/9/fd/3"}, {"type": "mount"}]
    shm = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert shm == [{"destination": "/dev/shm", "type": "bind", "source": "/pods/p/shm",
                    "options": ["rbind", "rprivate", "rw"]}]


def test_seccomp_runtime_default_and_localhost(tmp_path):
    rules = _spec(seccomp={"type": "RuntimeDefault"})["linux"]["seccomp"]
    assert rules["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = {n: r["errnoRet"] for r in rules["syscalls"] for n in r["names"]}
    assert denied["mount"] == denied["keyctl"] == 1 and denied["clone3"] == 38  # EPERM; ENOSYS: libc falls back
    admin = _spec(seccomp={"type": "RuntimeDefault"}, capabilities_add=["SYS_ADMIN"])["linux"]["seccomp"]
    allowed_now = {n for r in admin["syscalls"] for n in r["names"]}
    assert "mount" not in allowed_now and "clone3" not in allowed_now and "keyctl" in allowed_now
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}))
    local = _spec(seccomp={"type": "Localhost", "path": str(profile)})["linux"]["seccomp"]
    assert local == {"defaultAction": "SCMP_ACT_ERRNO",
                     "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}
    with pytest.raises(ContainerError) as e:
        _spec(seccomp={"type": "Localhost", "path": str(tmp_path / "missing.json")})
    assert e.value.reason == "CreateContainerError" and "cannot load seccomp profile" in e.value.message


def test_user_from_image_and_security_context(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nnginx:x:101:101::/:/bin/false\n")
    (tmp_path / "etc" / "group").write_text("nginx:x:101:\nweb:x:33:nginx\n")
    root = str(tmp_path)
    cfg = ContainerConfig(name="c", image="x")
    assert resolve_user(cfg, "nginx", root) == {"uid": 101, "gid": 101, "additionalGids": [33, 101]}
    # a numeric user: its passwd group, not the image's (the kubelet passes on the uid only)
    assert resolve_user(cfg, "101:7", root) == {"uid": 101, "gid": 101, "additionalGids": [33, 101]}
    assert resolve_user(cfg, "5000", root) == {"uid": 5000, "gid": 0, "additionalGids": [0]}
    assert resolve_user(cfg, "", root) == {"uid": 0, "gid": 0, "additionalGids": [0]}
    pod = ContainerConfig(name="c", image="x", run_as_user=2000, run_as_group=3000, supplemental_groups=[4000])
    assert resolve_user(pod, "nginx", root) == {"uid": 2000, "gid": 3000, "additionalGids": [3000, 4000]}
    with pytest.raises(ContainerError) as e:
        resolve_user(cfg, "nobody", root)
    assert "unable to find user nobody" in e.value.message


def test_kubelet_security_options_and_run_as_non_root():
    pod = {"spec": {"hostPID": True, "securityContext": {"seccompProfile": {"type": "Localhost",
                                                                            "localhostProfile": "p/x.json"}}}}
    c = {"name": "c", "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                          "capabilities": {"add": ["NET_ADMIN"]}}}
    opts = security_options(pod, c, "/var/lib/kybern/seccomp")
    assert opts["no_new_privs"] and opts["readonly_rootfs"] and opts["capabilities_add"] == ["NET_ADMIN"]
    assert (opts["pid_namespace"], opts["ipc_namespace"]) == ("node", "pod")
    assert opts["seccomp"] == {"type": "Localhost", "path": "/var/lib/kybern/seccomp/p/x.json"}
    assert security_options({"spec": {"shareProcessNamespace": True}}, {"name": "c"}, "/s")["pid_namespace"] == "pod"
    assert "seccomp" not in security_options({"spec": {}}, {"name": "c"}, "/s")
    non_root = {"name": "c", "securityContext": {"runAsNonRoot": True}}
    assert run_as_non_root_refusal({}, non_root, "p", 101, "") == ""
    assert "image will run as root" in run_as_non_root_refusal({}, non_root, "p", 0, "")
    assert "image will run as root" in run_as_non_root_refusal({}, non_root, "p", None, "")
    assert "non-numeric user (nginx)" in run_as_non_root_refusal({}, non_root, "p", None, "nginx")
    assert process_identity({"spec": {"securityContext": {"fsGroup": 5}}}, {"name": "c"}) == {
        "run_as_user": None, "run_as_group": None, "supplemental_groups": [5]}
