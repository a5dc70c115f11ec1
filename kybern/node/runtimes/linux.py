"""The `linux` runtime: containers through an OCI runtime (crun), each in its
image's root filesystem with its own PID and mount namespaces and its pod's IPC
namespace and /dev/shm, as the image's user with the securityContext applied
(capabilities, privileged, read-only root, no_new_privs, seccomp) as containerd
would (docs/node.md "The linux runtime").

It is the process runtime (process.py) with three things changed, so sandboxes
(the pod's network and UTS namespaces), logs, cgroups, probes and exit handling
are that runtime's:

- the container's root is an overlayfs (lowerdir: the image's directory in the
  store, never written; upperdir/workdir: per container) instead of a copy,
  mounted in the agent's template mount namespace (mountns.py), where crun runs;
- the started command is `crun run --bundle <container dir> <id>` in the
  foreground with a generated config.json (`oci_spec`): crun's stdio are the
  container's, and it exits with the container's exit code. crun is started
  the way the process runtime starts a program: inside the pod's network and
  UTS namespaces (the spec lists neither, so the container inherits them: one
  place joins them, sandbox.py) and inside the container's cgroup (crun runs
  with --cgroup-manager=disabled: the cgroup, its limits and its OOM counter
  stay cgroups.py's);
- stop is `crun kill <id> TERM`, then KILL after the grace period; exec and
  exec probes are `crun exec <id> ...`; leftovers of an agent that is gone
  (`crun list` under our --root) are killed and deleted at start.

Root only (`kybern up|agent --runtime linux` refuse otherwise: `problem()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import posixpath
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kybern.network.netns import libc_call, setns
from kybern.node.runtimes import mountns
from kybern.node.runtimes.base import (
    CREATED,
    RUNNING,
    ContainerConfig,
    ContainerError,
    ContainerStatus,
    ImageStatus,
    Mount,
    PodSandboxConfig,
)
from kybern.node.runtimes.process import ProcessRuntime, _Container, container_argv, container_env
from kybern.node.runtimes.records import write_record
from kybern.node.runtimes.stdio import ExecProcess, spawn_exec

log = logging.getLogger(__name__)

# containerd's defaults (oci/spec.go, oci/mounts.go): what a container gets unless the pod asks otherwise
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE"]
MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/sys/devices/virtual/powercap", "/proc/scsi"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# capability numbers 0..40 (linux/capability.h); a privileged container or "ALL" gets those the agent has
CAPABILITY_NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE"]
SHM_SIZE = 64 << 20  # containerd's default /dev/shm of a sandbox
# RuntimeDefault as a denylist (containerd's default profile is an allowlist): the syscalls
# that profile leaves out, each with the capabilities for which it allows it after all
# (its "includes": {"caps": [...]}); the rest of the syscalls are allowed
_BY_CAPS: dict[tuple[str, ...], list[str]] = {
    (): ["add_key", "keyctl", "request_key", "nfsservctl", "uselib", "userfaultfd", "ustat", "vm86",
         "vm86old", "_sysctl", "sysfs"],
    ("SYS_ADMIN",): ["fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount",
                     "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "pivot_root", "quotactl",
                     "quotactl_fd", "setns", "swapon", "swapoff", "umount", "umount2", "unshare"],
    ("SYS_ADMIN", "BPF"): ["bpf"],
    ("SYS_ADMIN", "PERFMON"): ["perf_event_open"],
    ("SYS_MODULE",): ["create_module", "delete_module", "finit_module", "get_kernel_syms", "init_module",
                      "query_module"],
    ("SYS_BOOT",): ["reboot", "kexec_load", "kexec_file_load"],
    ("SYS_PACCT",): ["acct"],
    ("SYS_RAWIO",): ["iopl", "ioperm"],
    ("SYS_TIME",): ["settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime",
                    "clock_adjtime64"],
    ("SYS_TTY_CONFIG",): ["vhangup"],
    ("SYS_NICE",): ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node", "move_pages"],
    ("SYSLOG",): ["syslog"],
    ("DAC_READ_SEARCH",): ["open_by_handle_at"],
}
_EPERM, _ENOSYS = 1, 38
_CLONE_NEWIPC = 0x08000000
_SYSTEM_MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755",
                                                                         "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
]


_UNIFIED = "/sys/fs/cgroup/unified"
_SH = shutil.which("sh") or "/bin/sh"
# the shell writes "0" (itself) into each cgroup.procs file given before "--", then execs the rest
_ENTER_CGROUPS = 'while [ "$1" != -- ]; do echo 0 > "$1"; shift; done; shift; exec "$@"'


def _hybrid_v2_in_use() -> bool:
    try:
        with open(f"{_UNIFIED}/cgroup.controllers") as f:
            return bool(f.read().strip())
    except OSError:
        return False


def _host_path(root: str, path: str, mounts: list[Mount]) -> str:
    """Where the container's absolute `path` is on the host: under the volume mounted over
    it (the deepest), else under `root`."""
    for m in sorted(mounts, key=lambda m: -len(m.container_path)):
        cp = m.container_path.rstrip("/")
        if path == cp or path.startswith(cp + "/"):
            return m.host_path + path[len(cp):]
    return root + path


def _lookup(root: str, path: str, mounts: list[Mount], hops: int = 0) -> str:
    """The host path of the container's `path`, its symlinks followed inside the container
    (an absolute target is the container's, not the host's)."""
    parts = [p for p in path.split("/") if p]
    cur = ""
    for i, part in enumerate(parts):
        nxt = f"{cur}/{part}"
        host = _host_path(root, nxt, mounts)
        if hops < 40 and os.path.islink(host):
            target = os.readlink(host)
            base = target if target.startswith("/") else posixpath.join(cur or "/", target)
            return _lookup(root, posixpath.normpath(posixpath.join(base, *parts[i + 1:])), mounts, hops + 1)
        cur = nxt
    return _host_path(root, cur or "/", mounts)


def find_executable(argv0: str, root: str, cwd: str, path_env: str, mounts: list[Mount]) -> bool:
    """Whether the container would find `argv0` (as runc's LookPath: on its PATH, or a path
    relative to its working dir), looking at its files from the host."""
    if "/" in argv0:
        candidates = [posixpath.join(cwd, argv0)]
    else:
        candidates = [posixpath.join(d if d.startswith("/") else posixpath.join(cwd, d), argv0)
                      for d in path_env.split(":") if d]
    for cand in candidates:
        host = _lookup(root, posixpath.normpath(cand), mounts)
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return True
    return False


def not_found(argv0: str) -> str:
    """The message of a command that is not there, as the process runtime (and runc) word it."""
    if "/" in argv0:
        return f'exec: "{argv0}": stat {argv0}: no such file or directory'
    return f'exec: "{argv0}": executable file not found in $PATH'


def crun() -> str | None:
    return shutil.which("crun")


def problem() -> str | None:
    """Why `--runtime linux` cannot run here, or None."""
    if os.geteuid() != 0:
        return "--runtime linux needs root (namespaces, overlay mounts, cgroups); run as root or use --runtime process"
    if crun() is None:
        return "--runtime linux needs crun (an OCI runtime) on PATH: apt-get install crun"
    return None


def all_capabilities() -> list[str]:
    """Every capability the agent itself has (containerd's allCaps: its own bounding set,
    which in a container may lack some the kernel knows)."""
    bits = (1 << len(CAPABILITY_NAMES)) - 1
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status") as f:
        bits = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    return [f"CAP_{n}" for i, n in enumerate(CAPABILITY_NAMES) if bits >> i & 1]


def _cap_name(name: str) -> str:
    up = name.upper()
    return up if up.startswith("CAP_") else "CAP_" + up


def capabilities(config: ContainerConfig) -> list[str]:
    """The container's bounding/effective/permitted set, as containerd's WithCapabilities:
    privileged: all; else its defaults, all with add "ALL", none with drop "ALL", then the
    other adds, then the other drops (so drop wins). Names with or without CAP_, any case;
    names the kernel does not know are left out (runc ignores them too)."""
    known = all_capabilities()
    if config.privileged:
        return known
    add = [c for c in config.capabilities_add if c.upper() != "ALL"]
    drop = {_cap_name(c) for c in config.capabilities_drop if c.upper() != "ALL"}
    caps = list(DEFAULT_CAPABILITIES)
    if len(add) != len(config.capabilities_add):
        caps = list(known)
    if any(c.upper() == "ALL" for c in config.capabilities_drop):
        caps = []
    for c in map(_cap_name, add):
        if c not in caps and c in known:
            caps.append(c)
    return [c for c in caps if c not in drop]


def _entries(root: str, name: str) -> list[list[str]]:
    """The colon-separated lines of the container's /etc/passwd or /etc/group."""
    try:
        with open(_lookup(root, f"/etc/{name}", []), encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(config: ContainerConfig, image_user: str, root: str) -> dict[str, Any]:
    """The OCI `process.user`, as kubelet + containerd make it: runAsUser, else the user
    part of the image's User (the kubelet passes on only that part: a numeric one as
    runAsUser, a name as runAsUsername), a name looked up in the image's /etc/passwd; the
    group runAsGroup, else the user's in /etc/passwd, else 0; additional groups: the
    groups of /etc/group that list the user, the group itself, supplementalGroups/fsGroup."""
    passwd = _entries(root, "passwd")
    uid: int | None = config.run_as_user
    name = ""
    gid = 0
    if uid is None:
        part = image_user.split(":", 1)[0]
        if part and not part.isdigit():
            entry = next((e for e in passwd if len(e) > 3 and e[0] == part), None)
            if entry is None:
                raise ContainerError("CreateContainerError", f"failed to generate container spec: unable to find "
                                     f"user {part}: no matching entries in passwd file")
            uid, name, gid = int(entry[2]), part, int(entry[3])
        else:
            uid = int(part) if part else 0
    if not name:
        entry = next((e for e in passwd if len(e) > 3 and e[2] == str(uid)), None)
        if entry is not None:
            name, gid = entry[0], int(entry[3])
    if config.run_as_group is not None:
        gid = config.run_as_group
    groups = {gid, *config.supplemental_groups}
    if name:
        groups |= {int(e[2]) for e in _entries(root, "group")
                   if len(e) > 3 and e[0] != name and name in e[3].split(",") and e[2].isdigit()}
    return {"uid": uid, "gid": gid, "additionalGids": sorted(groups)}


def oci_process(config: ContainerConfig, argv: list[str], env: dict[str, str], cwd: str, *,
                tty: bool = False, user: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec's `process` of the container (its execs get the same, with their own args)."""
    if user is None:
        user = {"uid": config.run_as_user or 0, "gid": config.run_as_group or 0}
        if config.supplemental_groups:
            user["additionalGids"] = list(config.supplemental_groups)
    caps = capabilities(config)
    return {
        "terminal": False,  # a TTY gets the agent's pty as its stdio (stdio.py)
        "user": user, "args": argv, "cwd": cwd,
        "env": [f"{k}={v}" for k, v in ({"TERM": "xterm"} if tty else {}).items()] +
               [f"{k}={v}" for k, v in env.items()],
        # as containerd, whatever the user: a non-root program loses them at its exec (no ambient set)
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": config.no_new_privs,
    }


def seccomp(config: ContainerConfig, caps: list[str]) -> dict[str, Any] | None:
    """The spec's `linux.seccomp`: none for Unconfined (the kubelet's default) and for a
    privileged container (containerd sets none); RuntimeDefault as a denylist (_BY_CAPS,
    EPERM; clone3 ENOSYS without SYS_ADMIN, so libc falls back to clone, as containerd);
    Localhost: the profile file (docker's format, as containerd reads it)."""
    kind = config.seccomp.get("type", "")
    if config.privileged or kind not in ("RuntimeDefault", "Localhost"):
        return None
    have = {c.removeprefix("CAP_") for c in caps}
    if kind == "RuntimeDefault":
        denied = sorted({n for need, names in _BY_CAPS.items() if not have.intersection(need) for n in names})
        rules = [{"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": _EPERM}]
        if "SYS_ADMIN" not in have:
            rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _ENOSYS})
        return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}
    path = config.seccomp.get("path", "")
    try:
        with open(path) as f:
            profile = json.load(f)
    except (OSError, ValueError) as e:
        raise ContainerError("CreateContainerError", f"failed to generate seccomp spec opts: cannot load seccomp "
                             f"profile \"{path}\": {e}") from e
    return _oci_seccomp(profile, have)


def _oci_seccomp(profile: dict[str, Any], caps: set[str]) -> dict[str, Any]:
    """A docker-format profile as OCI's section: its syscall rules whose includes/excludes
    caps match the container's (arches are libseccomp's: the native one)."""
    def applies(rule: dict[str, Any]) -> bool:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        need = {c.removeprefix("CAP_") for c in inc.get("caps") or []}
        bar = {c.removeprefix("CAP_") for c in exc.get("caps") or []}
        return need <= caps and not (bar & caps)
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ALLOW")}
    for k in ("defaultErrnoRet", "flags", "listenerPath"):
        if k in profile:
            out[k] = profile[k]
    rules = []
    for r in profile.get("syscalls") or []:
        if not applies(r):
            continue
        names = r.get("names") or ([r["name"]] if r.get("name") else [])
        rule = {"names": names, "action": r.get("action", "SCMP_ACT_ALLOW")}
        for k in ("args", "errnoRet"):
            if r.get(k) is not None:
                rule[k] = r[k]
        rules.append(rule)
    out["syscalls"] = rules
    return out


# runc's GetDevices leaves these out of a privileged container's host devices
_SKIPPED_DEV = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev", "console"}


def host_devices(top: str = "/dev") -> list[dict[str, Any]]:
    """The host's device nodes as OCI `linux.devices` (a privileged container's, as
    containerd's WithHostDevices)."""
    out: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DEV]
        for fn in filenames:
            if dirpath == top and fn in _SKIPPED_DEV:
                continue
            path = os.path.join(dirpath, fn)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
            if kind:
                out.append({"path": path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return out


def oci_spec(config: ContainerConfig, argv: list[str], env: dict[str, str], cwd: str, rootfs: str,
             hostname_file: str, *, user: dict[str, Any] | None = None, ipc: str = "", shm: str = "",
             pid: str = "") -> dict[str, Any]:
    """The OCI runtime spec (config.json) of a container. No network or UTS namespace:
    crun starts in the pod's and the container inherits them; none for a host PID/IPC
    namespace either (crun's are the host's). `ipc`/`pid`: the pod's IPC/PID namespace
    to join, `shm`: the directory bound at /dev/shm (the pod's, or the host's /dev/shm)."""
    process = oci_process(config, argv, env, cwd, tty=config.tty, user=user)
    mounts = [dict(m) for m in _SYSTEM_MOUNTS if not (shm and m["destination"] == "/dev/shm")]
    if config.privileged:  # containerd's WithWriteableSysfs
        mounts = [{**m, "options": [o for o in m["options"] if o != "ro"]} if m["type"] == "sysfs" else m
                  for m in mounts]
    if shm:
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": shm, "options": ["rbind", "rprivate",
                                                                                            "rw"]})
    mounts.append({"destination": "/etc/hostname", "type": "bind", "source": hostname_file,
                   "options": ["rbind", "rprivate", "rw"]})
    # parents before children, as containerd sorts them (a volume inside another one)
    for m in sorted(config.mounts, key=lambda m: len(Path(m.container_path).parts)):
        mounts.append({"destination": m.container_path, "type": "bind", "source": m.host_path,
                       "options": ["rbind", "rprivate", "ro" if m.readonly else "rw"]})
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if config.pid_namespace != "node":
        namespaces.insert(0, {"type": "pid", **({"path": pid} if pid else {})})
    if config.ipc_namespace != "node":
        namespaces.insert(-1, {"type": "ipc", **({"path": ipc} if ipc else {})})
    linux: dict[str, Any] = {"namespaces": namespaces, "rootfsPropagation": "rprivate"}
    if config.privileged:  # containerd's WithPrivileged, WithHostDevices: no masks, the host's devices
        linux["devices"] = host_devices()
    else:
        linux.update(maskedPaths=MASKED_PATHS, readonlyPaths=READONLY_PATHS)
    profile = seccomp(config, process["capabilities"]["bounding"])
    if profile is not None:
        linux["seccomp"] = profile
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": config.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    }


# PID 1 of a pod's shared PID namespace, as the pause container: it reaps the orphans
# reparented to it and exits on TERM (its ns then dies, with what is left in it). Python
# reads it from a pipe as its stdin, so that `ps` in the pod shows it as `/pause`.
_REAPER = ("import os, signal, time\n"
           "with open('/proc/self/comm', 'w') as f:\n"
           "    f.write('pause')\n"
           "signal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n"
           "while True:\n"
           "    try:\n"
           "        os.wait()\n"
           "    except ChildProcessError:\n"
           "        time.sleep(1)\n")
_AS_PAUSE = ("import os, sys\n"
             "r, w = os.pipe()\n"
             "os.write(w, sys.argv[1].encode())\n"
             "os.close(w)\n"
             "os.dup2(r, 0)\n"
             "os.execve(sys.executable, ['/pause'], {})\n")


def _ipc_namespace() -> int:
    """A new IPC namespace as an fd (close-on-exec) that keeps it alive and that
    /proc/<pid>/fd/<fd> enters: made on the calling thread, which goes back to its own."""
    home = os.open("/proc/thread-self/ns/ipc", os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc_call("unshare", _CLONE_NEWIPC)
        try:
            return os.open("/proc/thread-self/ns/ipc", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            setns(home, _CLONE_NEWIPC)
    finally:
        os.close(home)


class LinuxRuntime(ProcessRuntime):
    name = "linux"
    version = "0.1.0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crun = crun() or "crun"
        self.crun_root = str((self.root / "crun").resolve())
        self._ipc: dict[str, tuple[int, str]] = {}  # sandbox id -> (fd holding its IPC namespace, its shm dir)
        self._pid: dict[str, subprocess.Popen[bytes]] = {}  # sandbox id -> the holder of its shared PID namespace

    def _crun(self, *args: str) -> list[str]:
        # cgroups are ours (cgroups.py): crun runs inside the container's and makes none
        return [self.crun, "--root", self.crun_root, "--cgroup-manager=disabled", *args]

    async def _crun_run(self, *args: str, timeout: float = 10) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(*self._in_template(self._crun(*args)), stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return -1, "timed out"
        return proc.returncode or 0, out.decode(errors="replace")

    @staticmethod
    def _in_template(argv: list[str]) -> list[str]:
        return ["nsenter", f"--mount={mountns.template_path()}", "--", *argv]

    def _namespaces(self, c: _Container) -> dict[str, str]:
        # crun always runs in the template mount namespace: the overlay roots and in-memory
        # volumes are mounted there, and the cgroup v2 half of a hybrid layout is hidden
        return {**super()._namespaces(c), "mnt": mountns.template_path()}

    # -- the pod's IPC namespace and /dev/shm ----------------------------------
    def _pod_ipc(self, sandbox_id: str) -> tuple[str, str]:
        """The pod's IPC namespace (a path that enters it) and its /dev/shm directory, made
        by its first container, as containerd's sandbox has them: its containers share
        System V IPC, POSIX message queues and shared memory files."""
        got = self._ipc.get(sandbox_id)
        if got is None:
            shm = self.root / "pods" / sandbox_id / "shm"
            shm.mkdir(parents=True, exist_ok=True)
            mountns.mount_tmpfs(str(shm), SHM_SIZE, shm=True)
            got = self._ipc[sandbox_id] = (_ipc_namespace(), str(shm))
        return f"/proc/{os.getpid()}/fd/{got[0]}", got[1]

    async def _pod_pid(self, sandbox_id: str) -> str:
        """The pod's shared PID namespace (shareProcessNamespace), a path that enters it:
        where upstream's containers join the pause container's, here a small reaper is
        PID 1 (`unshare --pid --fork`), started with the pod's first container. Forked by
        the event loop's thread: --pdeathsig fires when the forking thread ends."""
        proc = self._pid.get(sandbox_id)
        if proc is None or proc.poll() is not None:
            proc = subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--pid", "--fork", "--kill-child", "--",
                 sys.executable, "-I", "-S", "-c", _AS_PAUSE, _REAPER],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            self._pid[sandbox_id] = proc
        deadline = time.monotonic() + 10
        while True:  # unshare's child is the namespace's PID 1
            try:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            if kids:
                return f"/proc/{kids[0]}/ns/pid"
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ContainerError("CreateContainerError", "failed to start the pod's PID namespace")
            await asyncio.sleep(0.005)

    def _release_namespaces(self, sandbox_id: str) -> None:
        got = self._ipc.pop(sandbox_id, None)
        if got is not None:
            os.close(got[0])
            mountns.unmount(got[1])
            shutil.rmtree(Path(got[1]).parent, ignore_errors=True)
        proc = self._pid.pop(sandbox_id, None)
        if proc is not None:  # unshare --kill-child: its PID 1 goes too, and with it the namespace
            proc.kill()
            proc.wait()

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await super().stop_pod_sandbox(sandbox_id)
        await asyncio.to_thread(self._release_namespaces, sandbox_id)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await super().remove_pod_sandbox(sandbox_id)
        await asyncio.to_thread(self._release_namespaces, sandbox_id)

    async def shutdown(self, timeout: float) -> None:
        await super().shutdown(timeout)
        for sid in {*self._ipc, *self._pid}:
            await asyncio.to_thread(self._release_namespaces, sid)

    async def image_status(self, ref: str) -> ImageStatus | None:
        """With the image's user, as containerd reports it (the kubelet's runAsNonRoot check)."""
        st = await super().image_status(ref)
        img = self.images.get(ref) if st is not None else None
        if st is not None and img is not None:
            part = str(img.config.get("user", "")).split(":", 1)[0]
            if part.isdigit():
                st.uid = int(part)
            elif part:
                st.username = part
        return st

    async def start(self) -> None:
        os.makedirs(self.crun_root, exist_ok=True)
        if not self.mount_namespaces:
            raise RuntimeError("the linux runtime needs mount namespaces (root; KYBERN_MOUNT_NAMESPACES not 0)")
        await super().start()  # records of running containers: their processes and cgroups are killed
        if _hybrid_v2_in_use():
            # crun refuses a hybrid layout whose cgroup2 half has controllers, even with
            # --cgroup-manager=disabled; it then sees plain cgroup v1 (its cgroups are ours anyway)
            await asyncio.to_thread(mountns.mount_tmpfs, _UNIFIED, 4096)
        # what an agent that is gone left in crun's state: killed and deleted, as the process runtime reaps
        rc, out = await self._crun_run("list", "-q")
        for cid in out.split() if rc == 0 else []:
            await self._crun_run("delete", "-f", cid)

    # -- containers ---------------------------------------------------------
    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox_config: PodSandboxConfig) -> str:
        img = self._image_for(sandbox_id, config)
        icfg = img.config
        argv = container_argv(config, icfg)
        env = container_env(config, icfg, sandbox_config, DEFAULT_PATH, {"HOME": "/"})
        cwd = config.working_dir or icfg.get("workingDir") or "/"
        cid = os.urandom(32).hex()
        cdir = self.root / "containers" / cid
        rootfs = str(cdir / "rootfs")
        try:
            user = resolve_user(config, icfg.get("user", ""), str(img.rootfs))
            ipc, shm = ("", "/dev/shm") if config.ipc_namespace == "node" else \
                await asyncio.to_thread(self._pod_ipc, sandbox_id)
            pid = await self._pod_pid(sandbox_id) if config.pid_namespace == "pod" else ""
            for d in ("rootfs", "upper", "work"):
                (cdir / d).mkdir(parents=True)
            hostname = cdir / "hostname"
            # the pod's hostname (its UTS namespace's), or the node's for a hostNetwork pod
            name = socket.gethostname() if sandbox_config.host_network else (
                sandbox_config.hostname or sandbox_config.name)[:63].rstrip("-.")
            hostname.write_text(name + "\n")
            spec = oci_spec(config, argv, env, cwd, rootfs, str(hostname), user=user, ipc=ipc, shm=shm, pid=pid)
            (cdir / "config.json").write_text(json.dumps(spec))
            await asyncio.to_thread(mountns.mount_overlay, str(img.rootfs), str(cdir / "upper"),
                                    str(cdir / "work"), rootfs)
        except ContainerError:
            await asyncio.to_thread(shutil.rmtree, cdir, True)
            raise
        except OSError as e:
            await asyncio.to_thread(shutil.rmtree, cdir, True)
            raise ContainerError("CreateContainerError", f"failed to create the container's root: {e}") from e
        log_path = os.path.join(sandbox_config.log_directory, config.log_path) if config.log_path else str(
            cdir / "container.log")
        status = ContainerStatus(id=cid, sandbox_id=sandbox_id, name=config.name, attempt=config.attempt,
                                 state=CREATED, image=img.ref, image_ref=img.repo_digest,
                                 created_at=time.time(), log_path=log_path, labels=dict(config.labels))
        c = _Container(status, config, cdir, cwd, argv, env)
        try:
            if self.cgroups.enabled and sandbox_config.cgroup_parent:
                c.cgroup = self._container_cgroup(sandbox_config, cid, config.resources)
        except OSError as e:
            await self._remove_root(c)
            raise ContainerError("CreateContainerError", f"failed to create the container's cgroup: {e}") from e
        self._keep(c)
        return cid

    def _in_cgroup(self, c: _Container, argv: list[str]) -> list[str]:
        """`argv` started from inside the container's cgroup: crun forks the container's process
        at once, so moving crun after the spawn (spawnd.py) could leave that process outside."""
        paths = self.cgroups.joiner(c.cgroup, None).paths
        return [_SH, "-c", _ENTER_CGROUPS, "sh", *paths, "--", *argv] if paths else argv

    def _start_target(self, c: _Container) -> tuple[list[str], str, str, bool, Any, dict[str, str]]:
        # checked before crun runs, so a missing command is a StartError as with runc (crun would
        # only say so in the container's log and exit 127); a fresh container's files are its image's
        img = self.images.get(c.config.image)
        if img is not None and not find_executable(c.argv[0], str(img.rootfs), c.cwd, c.env.get("PATH", ""),
                                                   c.config.mounts):
            raise ContainerError("StartError", not_found(c.argv[0]))
        argv = self._in_cgroup(c, self._crun("run", "--bundle", str(c.dir), c.status.id))
        return argv, argv[0], str(c.dir), True, None, self._namespaces(c)

    def _exec_argv(self, c: _Container, cmd: list[str], *, tty: bool = False) -> list[str]:
        """`crun exec` of `cmd` as the container's process: its user and groups, env, working
        dir, capabilities. The process file is written once per command (probes repeat theirs)."""
        path = c.dir / "exec" / (hashlib.sha256(json.dumps([tty, cmd]).encode()).hexdigest()[:32] + ".json")
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            user = json.loads((c.dir / "config.json").read_text())["process"]["user"]  # as resolved at create
            write_record(path, oci_process(c.config, cmd, c.env, c.cwd, tty=tty, user=user))
        return self._in_cgroup(c, self._crun("exec", "--process", str(path), c.status.id))

    def _found(self, c: _Container, argv0: str) -> bool:
        """Whether `argv0` is there now: seen through the container's init process's root."""
        pid = c.status.pid  # crun's; the container's init is its child (not a scan of all processes)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except OSError:
            kids = []
        if not kids:
            return True  # starting or exiting: crun says what it finds
        return find_executable(argv0, f"/proc/{kids[0]}/root", c.cwd, c.env.get("PATH", ""), [])

    def _exec_target(self, c: _Container, cmd: list[str]) -> tuple[list[str], str, str, bool, Any] | None:
        if not self._found(c, cmd[0]):
            return None
        argv = self._exec_argv(c, cmd)
        return argv, argv[0], str(c.dir), True, None

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool) -> ExecProcess:
        c = self._get(container_id)
        if c.status.state != RUNNING or not cmd:
            raise ContainerError("NotRunning" if cmd else "ExecError", f"container {container_id} is not running")
        if not self._found(c, cmd[0]):
            raise ContainerError("ExecError", not_found(cmd[0]))
        argv = self._exec_argv(c, cmd, tty=tty)  # a TTY session gets the agent's pty as its stdio (stdio.py)
        # the pod's network and hostname (the spec leaves them to crun's), the template mounts
        argv = ["nsenter", *(f"--{'mount' if kind == 'mnt' else kind}={path}"
                             for kind, path in self._namespaces(c).items()), "--", *argv]
        ep = await spawn_exec(argv, shutil.which(argv[0]) or argv[0], str(c.dir), {"PATH": DEFAULT_PATH},
                              tty=tty, stdin=stdin)
        return ep

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self._containers.get(container_id)
        if c is None or c.status.state != RUNNING:
            return
        if timeout > 0:
            await self._crun_run("kill", container_id, "TERM")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(c.exited.wait(), timeout)
        if not c.exited.is_set():
            await self._crun_run("kill", container_id, "KILL")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(c.exited.wait(), 2)
        await super().stop_container(container_id, 0)  # crun itself, if it is still there

    async def _discard(self, c: _Container) -> None:
        await self._crun_run("delete", "-f", c.status.id)
        await self._remove_root(c)

    async def _remove_root(self, c: _Container) -> None:
        await asyncio.to_thread(mountns.unmount, str(c.dir / "rootfs"))
        await asyncio.to_thread(shutil.rmtree, c.dir, True)
