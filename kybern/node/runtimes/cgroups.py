"""Cgroups for the process runtime: resource limits enforced by the kernel, OOM
kills told apart from other kills, and usage read from the kernel's counters.

Two halves, as between kubelet and containerd:

- what the kubelet asks for (pure functions, no I/O): the pod's cgroup parent
  from its QoS class, and the CRI-shaped resources of a container
  (`container_resources`, pkg/kubelet/kuberuntime generateLinuxContainerResources)
  and of the whole pod (`pod_resources`, pkg/kubelet/cm ResourceConfigForPod);
- what the runtime does with it (`Cgroups`): create the cgroups, write the
  limits, put a container's process in its cgroup before its program runs (so
  the whole tree is confined: `Joiner` in the child on the fork path; on the
  vfork paths spawnd.move_into_cgroup right after the spawn, through the
  joiner's `paths`), read OOM counters and usage,
  kill and remove.

The layout is the kubelet's cgroupfs driver under a root of our own, so that
several agents on one machine never share a cgroup:

    <root>/kubepods/pod<uid>/<container id>              Guaranteed
    <root>/kubepods/burstable/pod<uid>/<container id>
    <root>/kubepods/besteffort/pod<uid>/<container id>

where <root> is `kybern-<node>-<hash of the data dir>`:
- cgroup v2 (a cgroup2 mount whose cgroup.controllers lists cpu and memory,
  usually /sys/fs/cgroup): <root> is at the top of the hierarchy, and the cpu,
  memory and pids controllers are enabled in every subtree_control on the way
  down (a cgroup that holds processes cannot delegate controllers, so we cannot
  nest under the agent's own cgroup, except when that is the namespace root);
- cgroup v1 (one hierarchy per controller: memory, cpu, cpuacct, pids): <root>
  sits under the agent's own cgroup in each hierarchy, so whatever confines the
  agent (a systemd unit, a container) still confines its pods.

Limits: memory.max / memory.limit_in_bytes (and no swap beyond it), cpu.max /
cpu.cfs_quota_us+cfs_period_us from limits, cpu.weight / cpu.shares from
requests, pids.max from KYBERN_POD_PIDS_LIMIT (the kubelet's --pod-max-pids;
unlimited by default) on the pod cgroup. On v1 the pids hierarchy is used only
when that limit is set: without it there is nothing to write or read there.

Cost per pod: on v1 each cgroup is a mkdir in every hierarchy, and each limit
file a write, all kernel work under cgroup locks. So a pod's cgroup is set up
once per agent process (a container created later only checks it is still
there), and a cgroup the kernel has just created gets only the values that
differ from its defaults (a BestEffort container: one write, cpu.shares);
an existing one (an agent restarted on its own tree) gets every value.

Without root or without a usable hierarchy nothing is created: limits are not
enforced, the agent logs that once, and stats fall back to process trees.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from kybern.node.quantity import parse_quantity

log = logging.getLogger(__name__)

# -- what the kubelet asks for ----------------------------------------------------
# CRI LinuxContainerResources, as a dict so it survives the runtime's JSON records:
#   cpu_shares, cpu_quota, cpu_period, memory_limit_in_bytes, pids_limit
Resources = dict[str, int]

CPU_PERIOD_US = 100_000  # the kernel's and the kubelet's default CFS period
MIN_QUOTA_US = 1_000
MIN_SHARES, MAX_SHARES = 2, 262_144


def cgroup_parent(qos_class: str, uid: str) -> str:
    """The pod's cgroup, relative to the runtime's root (cgroupfs driver naming)."""
    if qos_class == "Guaranteed":
        return f"kubepods/pod{uid}"
    return f"kubepods/{qos_class.lower()}/pod{uid}"


def milli_cpu_to_shares(milli: int) -> int:
    if milli == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * 1024 // 1000))


def milli_cpu_to_quota(milli: int, period: int = CPU_PERIOD_US) -> int:
    return max(MIN_QUOTA_US, milli * period // 1000) if milli > 0 else 0


def _amount(values: dict[str, Any], name: str) -> Decimal | None:
    v = values.get(name)
    if v is None:
        return None
    try:
        return parse_quantity(v)
    except ValueError:
        return None


def _container_amounts(c: dict[str, Any]) -> tuple[int, int | None, int | None]:
    """(cpu request in millicores, cpu limit in millicores, memory limit in bytes)."""
    res = c.get("resources") or {}
    lim = res.get("limits") or {}
    req = {**lim, **(res.get("requests") or {})}  # apiserver defaulting: requests default to limits
    cpu_req = _amount(req, "cpu")
    cpu_lim = _amount(lim, "cpu")
    mem_lim = _amount(lim, "memory")
    return (int((cpu_req or 0) * 1000),
            int(-(-cpu_lim * 1000 // 1)) if cpu_lim is not None else None,  # rounded up, as MilliValue
            int(mem_lim) if mem_lim is not None else None)


def container_resources(c: dict[str, Any]) -> Resources:
    """The CRI resources of one container of the spec."""
    return _resources(*_container_amounts(c))


def _resources(cpu_req: int, cpu_lim: int | None, mem_lim: int | None) -> Resources:
    """CRI resources from milli-CPU requests/limits and a memory limit in bytes."""
    out: Resources = {"cpu_shares": milli_cpu_to_shares(cpu_req)}
    if cpu_lim:
        out["cpu_period"] = CPU_PERIOD_US
        out["cpu_quota"] = milli_cpu_to_quota(cpu_lim)
    if mem_lim:
        out["memory_limit_in_bytes"] = mem_lim
    return out


def pod_resources(pod: dict[str, Any]) -> Resources:
    """The pod cgroup's resources: shares from the summed requests; a CPU or
    memory limit only when every container has one (the sum of the app
    containers', or the largest init container's if that is more)."""
    spec = pod.get("spec") or {}

    def totals(containers: Iterable[dict[str, Any]]) -> tuple[int, int | None, int | None]:
        req, cpu, mem = 0, 0, 0
        cpu_all = mem_all = True
        for c in containers:
            r, cl, ml = _container_amounts(c)
            req += r
            cpu_all, cpu = cpu_all and cl is not None, cpu + (cl or 0)
            mem_all, mem = mem_all and ml is not None, mem + (ml or 0)
        return req, (cpu if cpu_all else None), (mem if mem_all else None)

    req, cpu, mem = totals(spec.get("containers") or [])
    for ic in spec.get("initContainers") or []:  # init containers run one at a time: the largest counts
        r, cl, ml = totals([ic])
        req = max(req, r)
        cpu = None if cpu is None or cl is None else max(cpu, cl)
        mem = None if mem is None or ml is None else max(mem, ml)
    return _resources(req, cpu, mem)


# -- what the runtime does ----------------------------------------------------------
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
V2_CONTROLLERS = ("cpu", "memory", "pids")
QOS_PARENTS = ("kubepods", "kubepods/burstable", "kubepods/besteffort")
# what a cgroup the kernel has just created holds already (not written again)
V1_DEFAULTS = {"memory.limit_in_bytes": "-1", "cpu.cfs_period_us": str(CPU_PERIOD_US),
               "cpu.cfs_quota_us": "-1", "cpu.shares": "1024"}
V2_DEFAULTS = {"memory.max": "max", "cpu.max": f"max {CPU_PERIOD_US}", "cpu.weight": "100"}


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] to v2 cpu.weight [1, 10000], as runc converts."""
    return 1 + ((max(MIN_SHARES, shares) - 2) * 9999) // 262142


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount root, mount point, super options) of the cgroup mounts."""
    out = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(f) < 5 or len(r) < 3 or r[0] not in ("cgroup", "cgroup2"):
            continue
        point = f[4].replace("\\040", " ")
        out.append((r[0], f[3], point, set(r[2].split(","))))
    return out


def _own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """controller -> our cgroup path ("" for the v2 hierarchy)."""
    out = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for ctl in parts[1].split(",") if parts[1] else [""]:
                out[ctl] = parts[2]
    return out


def _under(point: str, mount_root: str, path: str) -> Path:
    """Where cgroup `path` (as /proc/self/cgroup names it) is below a mount of `mount_root`."""
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root + "/")):
        path = path[len(mount_root):]
    return Path(point) / path.lstrip("/")


def _write(path: Path | str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)  # as open("w"), os-level
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _keyed(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[k] = int(v)
    return out


class Joiner:
    """A preexec_fn (the fork path) that moves the child into a cgroup before it
    execs (writing "0" to cgroup.procs moves the writer), then calls `then`.
    `paths`: the cgroup.procs files, one per hierarchy; the vfork paths move the
    pid through them right after the spawn (spawnd.move_into_cgroup). The files
    are opened on first use; close() after the spawn."""

    def __init__(self, paths: list[str], then: Callable[[], None] | None) -> None:
        self.paths = paths
        self.then = then
        self.fds: list[int] | None = None

    def open(self) -> list[int]:
        if self.fds is None:
            self.fds = []
            try:
                for path in self.paths:
                    self.fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
            except OSError as e:  # created with the container; gone only if someone removed it
                log.warning("cannot enter cgroup %s, the process runs outside it: %s", path, e)
                self.close()
                self.fds = []
        return self.fds

    def __call__(self) -> None:
        for fd in self.open():
            with contextlib.suppress(OSError):
                os.write(fd, b"0")
        if self.then is not None:
            self.then()

    def close(self) -> None:
        for fd in self.fds or ():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = None


class Cgroups:
    """The runtime's cgroup tree. Paths handed around are relative to <root>
    ("kubepods/burstable/pod<uid>/<container id>"); "" means "no cgroup"."""

    def __init__(self, name: str, *, base: dict[str, Path] | None = None, version: int = 0,
                 pod_pids_limit: int | None = None) -> None:
        """`base` and `version` are for tests (a tmp dir as the hierarchy);
        by default the host's hierarchy is detected."""
        self.name = name
        self.version = version
        self.reason = ""
        self.roots: dict[str, Path] = {}  # v1: controller -> <root>; v2: {"": <root>}
        if pod_pids_limit is None:
            env = os.environ.get("KYBERN_POD_PIDS_LIMIT", "")
            pod_pids_limit = int(env) if env.strip().lstrip("-").isdigit() and int(env) > 0 else None
        self.pod_pids_limit = pod_pids_limit
        if base is not None:
            self.roots = {k: v / name for k, v in base.items()}
        else:
            self._detect()
        self._root_strs = [str(d) for d in self.dirs("")]  # each hierarchy once
        self._root_by_controller = {k: str(v) for k, v in self.roots.items()}
        self._warned = False
        # set up by this process: pod cgroup -> the resources written; QoS parents given
        # their weight; v2 cgroups known to delegate the controllers (all dropped on removal)
        self._pods: dict[str, Resources] = {}
        self._qos_done: set[str] = set()
        self._delegating: set[Path] = set()

    @classmethod
    def for_node(cls, node_name: str, data_dir: str | os.PathLike[str]) -> Cgroups:
        digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:8]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in node_name)[:64]
        return cls(f"kybern-{safe}-{digest}" if safe else f"kybern-{digest}")

    # -- detection ----------------------------------------------------------
    def _detect(self) -> None:
        if os.geteuid() != 0:
            self.reason = "the agent is not running as root"
            return
        try:
            mounts = _mounts(_read(Path("/proc/self/mountinfo")))
            own = _own_cgroups(_read(Path("/proc/self/cgroup")))
        except OSError as e:
            self.reason = f"cannot read the cgroup mounts: {e}"
            return
        for fstype, _root, point, _opts in mounts:
            if fstype != "cgroup2":
                continue
            try:
                have = set(_read(Path(point) / "cgroup.controllers").split())
            except OSError:
                continue
            if not {"cpu", "memory"} <= have:
                continue  # e.g. the empty cgroup2 of a hybrid v1 host
            # our own cgroup holds processes and cannot delegate: start at the top,
            # which must delegate (not so in a container whose processes sit at its root)
            want = [c for c in V2_CONTROLLERS if c in have]
            try:
                _write(Path(point) / "cgroup.subtree_control", " ".join(f"+{c}" for c in want))
            except OSError as e:
                self.reason = f"cannot enable {' '.join(want)} in {point}/cgroup.subtree_control: {e.strerror}"
                return
            self.version, self.roots = 2, {"": Path(point) / self.name}
            return
        v1: dict[str, Path] = {}
        for fstype, mroot, point, opts in mounts:
            if fstype != "cgroup":
                continue
            for ctl in V1_CONTROLLERS:
                if ctl == "pids" and not self.pod_pids_limit:
                    continue  # nothing to limit or read there: a mkdir, a move and an rmdir per cgroup saved
                if ctl in opts and ctl not in v1:
                    v1[ctl] = _under(point, mroot, own.get(ctl, "/")) / self.name
        if {"memory", "cpu", "cpuacct"} <= set(v1):
            self.version, self.roots = 1, v1
            return
        self.reason = "no cgroup hierarchy with the cpu and memory controllers was found"

    @property
    def enabled(self) -> bool:
        return bool(self.roots)

    def describe(self) -> str:
        if not self.enabled:
            return f"resource limits are not enforced: {self.reason}"
        where = ", ".join(sorted({str(p) for p in self.roots.values()}))
        return f"resource limits enforced through cgroup v{self.version} at {where}"

    def log_once(self) -> None:
        if self._warned:
            return
        self._warned = True
        if self.enabled:
            log.info("%s", self.describe())
        else:
            log.warning("%s (pods run, their usage is measured from their processes)", self.describe())

    def dirs(self, rel: str) -> list[Path]:
        """The cgroup's directory in each hierarchy (several controllers can share one)."""
        seen: dict[Path, None] = {}
        for root in self.roots.values():
            seen[root / rel if rel else root] = None
        return list(seen)

    def _dir(self, controller: str, rel: str) -> Path | None:
        root = self.roots.get("" if self.version == 2 else controller)
        if root is None:
            return None
        return root / rel if rel else root

    # -- creation -----------------------------------------------------------
    def _mkdir(self, rel: str, *, parents: bool = True) -> bool:
        """Create `rel` (and its parents, unless `parents` is false: then a missing
        parent raises FileNotFoundError on v1); on v2 enable the controllers on the way
        down. True when `rel` itself was created now (in every hierarchy), so it holds
        the kernel's defaults."""
        fresh = True
        if self.version != 2:
            for root in self._root_strs:  # os-level: this runs twice per pod start
                d = f"{root}/{rel}"
                try:
                    os.mkdir(d)
                except FileExistsError:
                    fresh = False
                except FileNotFoundError:
                    if not parents:
                        raise
                    Path(d).mkdir(parents=True, exist_ok=True)
            return fresh
        root = self.roots[""]
        parts = [p for p in rel.split("/") if p]
        chain = [root.parent, root] + [root.joinpath(*parts[:i + 1]) for i in range(len(parts))]
        for parent, child in itertools.pairwise(chain):
            try:
                child.mkdir()
                fresh = True
            except FileExistsError:
                fresh = False
            if parent in self._delegating:
                continue
            try:
                have = set(_read(parent / "cgroup.subtree_control").split())
                avail = set(_read(parent / "cgroup.controllers").split())
            except OSError:
                continue
            want = [c for c in V2_CONTROLLERS if c in avail and c not in have]
            if want:  # every cgroup above a container delegates the controllers
                _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in want))
            self._delegating.add(parent)
        return fresh

    def _apply(self, rel: str, res: Resources, *, fresh: bool = False) -> None:
        """Write the limits; on a `fresh` cgroup only those that differ from the kernel's
        defaults. A file's path is built (a string) only when it is written: on a fresh
        BestEffort cgroup that is none, and building them all was most of this call's cost."""
        defaults = (V2_DEFAULTS if self.version == 2 else V1_DEFAULTS) if fresh else {}
        writes: list[tuple[str, str, str, bool]] = []  # (controller, file, value, optional)

        def put(controller: str, name: str, value: str) -> None:
            if defaults.get(name) != value:
                writes.append((controller, name, value, False))

        mem = res.get("memory_limit_in_bytes")
        shares = res.get("cpu_shares")
        quota, period = res.get("cpu_quota"), res.get("cpu_period") or CPU_PERIOD_US
        pids = res.get("pids_limit")
        if self.version == 2:
            put("", "memory.max", str(mem) if mem else "max")
            if mem:
                writes.append(("", "memory.swap.max", "0", True))
            put("", "cpu.max", f"{quota if quota else 'max'} {period}")
            if shares:
                put("", "cpu.weight", str(shares_to_weight(shares)))
            if pids:
                writes.append(("", "pids.max", str(pids), True))
        else:
            if "memory" in self.roots:
                put("memory", "memory.limit_in_bytes", str(mem) if mem else "-1")
                if mem:  # no swapping past the limit: the kernel OOM-kills, as upstream expects
                    writes.append(("memory", "memory.memsw.limit_in_bytes", str(mem), True))
            if "cpu" in self.roots:
                put("cpu", "cpu.cfs_period_us", str(period))
                put("cpu", "cpu.cfs_quota_us", str(quota) if quota else "-1")
                if shares:
                    put("cpu", "cpu.shares", str(shares))
            if "pids" in self.roots and pids:
                writes.append(("pids", "pids.max", str(pids), True))
        for controller, name, value, optional in writes:
            root = self._root_by_controller[controller]
            self._set(f"{root}/{rel}/{name}" if rel else f"{root}/{name}", value, optional=optional)

    @staticmethod
    def _set(path: Path | str, value: str, *, optional: bool = False) -> None:
        try:
            _write(path, value)
        except FileNotFoundError:
            if not optional:
                raise
        except OSError as e:
            if not optional:
                raise OSError(e.errno, f"writing {value!r} to {path}: {e.strerror}") from e

    def ensure_pod(self, parent: str, res: Resources) -> None:
        """Create (or update) the pod's cgroup with the pod-level resources."""
        if not self.enabled or not parent:
            return
        res = dict(res)
        if self.pod_pids_limit:
            res["pids_limit"] = self.pod_pids_limit
        if self._pods.get(parent) == res:
            return  # set up by this process already (each container of the pod asks again)
        fresh = self._mkdir(parent)
        besteffort = "kubepods/besteffort"
        if parent.startswith(besteffort + "/") and besteffort not in self._qos_done:
            self._apply(besteffort, {"cpu_shares": MIN_SHARES})  # the kubelet gives BestEffort the least CPU weight
            self._qos_done.add(besteffort)
        self._apply(parent, res, fresh=fresh)
        self._pods[parent] = res

    def create_container(self, parent: str, container_id: str, res: Resources) -> str:
        """Create the container's cgroup below its pod's; returns its path."""
        if not self.enabled or not parent:
            return ""
        rel = f"{parent}/{container_id}"
        try:
            fresh = self._mkdir(rel, parents=False)
        except FileNotFoundError:  # the pod's cgroup was removed behind this process's back
            pod_res = self._pods.pop(parent, {})
            pod_res.pop("pids_limit", None)
            self.ensure_pod(parent, pod_res)
            fresh = self._mkdir(rel)
        self._apply(rel, res, fresh=fresh)
        return rel

    # -- processes ----------------------------------------------------------
    def joiner(self, rel: str, then: Callable[[], None] | None) -> Joiner:
        paths = [f"{root}/{rel}/cgroup.procs" for root in self._root_strs] if self.enabled and rel else []
        return Joiner(paths, then)

    def join(self, rel: str, pid: int) -> None:
        """Move `pid` into the cgroup (a no-op when the preexec step already did)."""
        if not self.enabled or not rel:
            return
        for d in self.dirs(rel):
            try:
                _write(d / "cgroup.procs", str(pid))
            except OSError as e:
                if e.errno != errno.ESRCH:
                    log.warning("cannot move pid %d into cgroup %s: %s", pid, d, e)

    def pids(self, rel: str) -> set[int]:
        out: set[int] = set()
        if not self.enabled:
            return out
        for d in self.dirs(rel):
            for f in [d / "cgroup.procs", *(x / "cgroup.procs" for x in _subdirs(d))]:
                with contextlib.suppress(OSError):
                    out.update(int(x) for x in _read(f).split())
        return out

    def kill(self, rel: str) -> None:
        """SIGKILL everything in the cgroup and below (processes that left the
        container's process group and session included)."""
        if not self.enabled or not rel:
            return
        if self.version == 2:
            f = self.roots[""] / rel / "cgroup.kill"
            if f.exists():
                with contextlib.suppress(OSError):
                    _write(f, "1")
                    return
        for _ in range(20):  # a process forking while we kill needs another round
            pids = self.pids(rel)
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self, rel: str) -> None:
        """Kill what is left in the cgroup and remove it with its children."""
        if not self.enabled or not rel:
            return
        self.kill(rel)
        self._forget(rel)
        for d in self.dirs(rel):
            _rmtree(d)

    def _forget(self, rel: str) -> None:
        """Drop what this process remembers having set up at or below `rel`."""
        for p in [p for p in self._pods if not rel or p == rel or p.startswith(rel + "/")]:
            del self._pods[p]
        if not rel:
            self._qos_done.clear()
        gone = self.dirs(rel)
        self._delegating = {p for p in self._delegating if not any(p == g or g in p.parents for g in gone)}

    def find_pod(self, uid: str) -> str:
        """The pod's cgroup path, whatever its QoS class, or ""."""
        for parent in QOS_PARENTS:
            rel = f"{parent}/pod{uid}"
            if any(d.is_dir() for d in self.dirs(rel)):
                return rel
        return ""

    def pod_uids(self) -> set[str]:
        out = set()
        for parent in QOS_PARENTS:
            for d in self.dirs(parent):
                for sub in _subdirs(d):
                    if sub.name.startswith("pod"):
                        out.add(sub.name[3:])
        return out

    def remove_all(self) -> None:
        """Remove our whole tree (the agent stops: containers do not outlive it)."""
        if not self.enabled:
            return
        self.kill("")
        self._forget("")
        for d in self.dirs(""):
            _rmtree(d)

    # -- what the kernel counted --------------------------------------------
    def oom_kills(self, rel: str) -> int:
        """Processes of the cgroup the OOM killer killed (memory.events
        oom_kill on v2; memory.oom_control oom_kill on v1, kernel 4.13+)."""
        if not self.enabled or not rel:
            return 0
        d = self._dir("memory", rel)
        if d is None:
            return 0
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            return _keyed(_read(d / name)).get("oom_kill", 0)
        except OSError:
            return 0

    def usage(self, rel: str) -> tuple[float, int] | None:
        """(CPU seconds, working set bytes) of the cgroup, or None. The working
        set is usage minus inactive file pages, as the kubelet computes it."""
        if not self.enabled or not rel:
            return None
        try:
            if self.version == 2:
                d = self.roots[""] / rel
                cpu = _keyed(_read(d / "cpu.stat"))["usage_usec"] / 1e6
                usage = int(_read(d / "memory.current"))
                inactive = _keyed(_read(d / "memory.stat")).get("inactive_file", 0)
            else:
                cd, md = self._dir("cpuacct", rel), self._dir("memory", rel)
                if cd is None or md is None:
                    return None
                cpu = int(_read(cd / "cpuacct.usage")) / 1e9
                usage = int(_read(md / "memory.usage_in_bytes"))
                inactive = _keyed(_read(md / "memory.stat")).get("total_inactive_file", 0)
        except (OSError, KeyError, ValueError):
            return None
        return cpu, max(0, usage - inactive)


def _subdirs(d: Path) -> list[Path]:
    try:
        return [x for x in d.iterdir() if x.is_dir()]
    except OSError:
        return []


def _rmtree(d: Path) -> None:
    """rmdir a cgroup and its children, deepest first (cgroup files cannot be
    unlinked; a cgroup whose last process is still exiting is busy a moment)."""
    for sub in _subdirs(d):
        _rmtree(sub)
    for attempt in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == 49:
                log.warning("cannot remove cgroup %s: %s", d, e)
                return
            time.sleep(0.02)
