"""Pod volumes on this node: where each one lives on the host, how its files are
kept up to date, and what each container mounts — the kubelet's volume manager
for the `process` runtime.

Every pod has a directory, `<data_dir>/pods/<ns>_<pod>_<uid>/` (its container
logs live there too); its volumes are under `_volumes/<volume name>/`
(`_` cannot start a container name, so the two never collide). Types:

  emptyDir               a directory shared by the pod's containers, removed with
                         the pod; medium Memory: as root (mount namespaces) a tmpfs
                         of its own, sized as the kubelet sizes it, else a
                         directory on /dev/shm
  (secret, projected and downwardAPI volumes live on /dev/shm, a tmpfs, under the
  agent's memory_dir(): as the kubelet's, their files never reach the disk)
  configMap, secret      files written like the kubelet's AtomicWriter: a
  downwardAPI, projected `..<timestamp>` dir, the `..data` symlink to it, and one
                         user-visible symlink per top-level entry; an update swaps
                         `..data` atomically. Re-read every RESYNC_INTERVAL (the
                         node's pods share one read of an object per OBJECT_TTL);
                         a projected serviceAccountToken is a real token from the
                         TokenRequest API, bound to the pod, renewed at 80 % of
                         its lifetime as the kubelet's token manager does
  hostPath               the host path itself (type checked, *OrCreate created)
  persistentVolumeClaim  the hostPath/local path of the PV the claim is bound to

A volume that cannot be set up (a ConfigMap that does not exist, an unbound
claim) records `FailedMount` ("MountVolume.SetUp failed for volume ...") and
the pod stays ContainerCreating; setup is retried with a back-off (1 s .. 30 s).
How a container then sees its mounts is the runtime's business
(runtimes/mounts.py); see docs/node.md for the limits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kybern.client.resources import CONFIGMAPS, SECRETS, SERVICEACCOUNTS, Resource
from kybern.machinery import errors, meta
from kybern.node.env import expand, field_value
from kybern.node.quantity import parse_quantity
from kybern.node.runtimes import cgroups, mountns
from kybern.node.runtimes.base import Mount

if TYPE_CHECKING:
    from kybern.node.pod_worker import PodWorker

PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
RESYNC_INTERVAL = 5.0  # how soon a changed ConfigMap/Secret/label reaches the files
# for pods whose only changing volume is the service account token volume (its CA, its
# token): the kubelet's sync period; a token is still renewed on time
SLOW_RESYNC_INTERVAL = 60.0
_FIXED_FIELDS = {"metadata.namespace", "metadata.name", "metadata.uid"}
SHM = Path("/dev/shm")
# the volume types the kubelet backs with tmpfs (a memory-medium emptyDir wrapped around
# them): their files (secrets, tokens) are never written to disk
_IN_MEMORY = ("secret", "projected", "downwardAPI")


def memory_dir(data_dir: str) -> Path | None:
    """This agent's directory on /dev/shm (a tmpfs): `/dev/shm/kybern/<a hash of its
    data dir>`, so agents sharing a machine keep apart; None without a writable
    /dev/shm (then those volumes live in the pod's directory, on disk)."""
    base = SHM / "kybern"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        if base.stat().st_uid == os.geteuid():
            base.chmod(0o700)  # the secrets inside are for the containers, not the machine's users
        if not os.access(base, os.W_OK | os.X_OK):
            return None
    except OSError:
        return None
    return base / hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:12]
OBJECT_TTL = 2.0  # a ConfigMap/Secret read serves every pod of the node that long (kube-root-ca.crt: all)
Files = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)


class MountError(Exception):
    pass


def claim_memory_dir(memory_dir: Path, data_dir: str) -> None:
    """Mark `memory_dir` as the agent of `data_dir`'s, and remove the directories of
    agents whose data dir is gone (killed and never started again: nobody else would)."""
    marker = ".data-dir"
    memory_dir.mkdir(parents=True, exist_ok=True)
    (memory_dir / marker).write_text(os.path.abspath(data_dir))
    for d in memory_dir.parent.iterdir():
        if d == memory_dir:
            continue
        with contextlib.suppress(OSError):
            if not os.path.isdir((d / marker).read_text()):
                shutil.rmtree(d, ignore_errors=True)


class VolumeManager:
    def __init__(self, worker: PodWorker) -> None:
        self.worker = worker
        self.paths: dict[str, str] = {}  # volume name -> host path
        self._next_sync = 0.0
        self._failures = 0
        self._meta_key: str | None = None
        self._tokens: dict[tuple[str, int], tuple[bytes, float]] = {}  # (audience, seconds) -> (token, renew at)
        self._running: asyncio.Future[tuple[bool, float | None]] | None = None
        self._tmpfs: set[str] = set()  # memory-backed emptyDirs mounted (mountns.mount_tmpfs)

    @property
    def root(self) -> Path:
        return Path(self.worker.log_directory()) / "_volumes"

    @property
    def memory_root(self) -> Path:
        """Where the pod's in-memory volumes live: under the agent's /dev/shm
        directory, else (no /dev/shm) in the pod's directory."""
        base = self.worker.agent.memory_dir
        return base / self.worker.uid if base is not None else self.root

    # -- setup --------------------------------------------------------------
    async def setup(self, pod: dict[str, Any]) -> tuple[bool, float | None]:
        """Set up (or refresh) every volume of the pod. Returns (all mounted,
        when to look again). A call while another is under way waits for that one
        (a pod's syncs can overlap; the token request must not be made twice)."""
        if self._running is not None and not self._running.done():
            return await asyncio.shield(self._running)
        self._running = asyncio.ensure_future(self._setup(pod))
        return await asyncio.shield(self._running)

    async def _setup(self, pod: dict[str, Any]) -> tuple[bool, float | None]:
        vols = pod.get("spec", {}).get("volumes") or []
        m = pod.get("metadata", {})
        meta_key = repr((m.get("labels"), m.get("annotations")))
        now = time.time()
        if all(v["name"] in self.paths for v in vols) and now < self._next_sync and meta_key == self._meta_key:
            return True, self._next_sync if self._dynamic(vols) else None
        self._meta_key = meta_key
        failed = False
        for v in vols:
            try:
                self.paths[v["name"]] = await self._setup_one(pod, v)
            except MountError as e:
                failed = failed or v["name"] not in self.paths  # a refresh failure keeps the old files
                self.worker.agent.recorder.event(
                    pod, "Warning", "FailedMount", f'MountVolume.SetUp failed for volume "{v["name"]}" : {e}')
        if failed:
            self._failures += 1
            self._next_sync = now + min(2 ** (self._failures - 1), 30)
            return False, self._next_sync
        self._failures = 0
        interval = RESYNC_INTERVAL if any(map(_changes_often, vols)) else SLOW_RESYNC_INTERVAL
        self._next_sync = min([now + interval, *(renew for _, renew in self._tokens.values())])
        return True, self._next_sync if self._dynamic(vols) else None

    @staticmethod
    def _dynamic(vols: list[dict[str, Any]]) -> bool:
        return any(k in v for v in vols for k in ("configMap", "secret", "projected", "downwardAPI"))

    async def _setup_one(self, pod: dict[str, Any], v: dict[str, Any]) -> str:
        name = v["name"]
        path = self.root / name
        if "emptyDir" in v:
            src = v["emptyDir"] or {}
            if src.get("medium") == "Memory" and mountns.supported():  # a tmpfs of its own, sized
                path.mkdir(parents=True, exist_ok=True)
                if str(path) not in self._tmpfs:
                    fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
                    try:  # its root's mode and group as _share() sets a directory's
                        mountns.mount_tmpfs(str(path), self._memory_volume_size(pod, src),
                                            None if fs_group is None else int(fs_group))
                    except (OSError, ValueError) as e:
                        raise MountError(f"failed to mount a tmpfs: {e}") from None
                    self._tmpfs.add(str(path))
                return str(path)
            if src.get("medium") == "Memory":
                path = self.memory_root / name
            path.mkdir(parents=True, exist_ok=True)
            _share(path, pod)
            return str(path)
        if "hostPath" in v:
            return _host_path(v["hostPath"] or {})
        if "persistentVolumeClaim" in v:
            return await self._claim_path(pod, (v["persistentVolumeClaim"] or {}).get("claimName", ""))
        if any(k in v for k in _IN_MEMORY):
            path = self.memory_root / name
        if "configMap" in v:
            src = v["configMap"] or {}
            files = await self._object_files(pod, "configmap", src, src.get("defaultMode", 0o644))
        elif "secret" in v:
            src = dict(v["secret"] or {}, name=(v["secret"] or {}).get("secretName", ""))
            files = await self._object_files(pod, "secret", src, src.get("defaultMode", 0o644))
        elif "downwardAPI" in v:
            src = v["downwardAPI"] or {}
            files = self._downward_files(pod, src.get("items") or [], src.get("defaultMode", 0o644))
        elif "projected" in v:
            files = await self._projected_files(pod, v["projected"] or {})
        else:
            kind = next((k for k in v if k != "name"), "unknown")
            raise MountError(f"volume type {kind} is not supported by this node")
        try:
            write_atomic(path, files)
        except OSError as e:  # e.g. a full /dev/shm: FailedMount, retried, as any other
            raise MountError(f"failed to write the volume's files in {path}: {e.strerror or e}") from None
        return str(path)

    async def _fetch(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        client = self.worker.agent.client

        async def read() -> dict[str, Any] | None:
            try:
                return await client.get(CONFIGMAPS if kind == "configmap" else SECRETS, name, ns)
            except errors.StatusError as e:
                if e.code == 404:
                    return None
                raise MountError(f'{kind} "{name}" could not be read: {e}') from None
        return await _shared_read((id(client), kind, ns, name), read)

    async def _token(self, pod: dict[str, Any], src: dict[str, Any]) -> bytes:
        """A service account token for the pod (TokenRequest, bound to it), kept until
        80 % of its lifetime has passed."""
        audience, seconds = src.get("audience") or "", int(src.get("expirationSeconds") or 3600)
        cached = self._tokens.get((audience, seconds))
        now = time.time()
        if cached is not None and now < cached[1]:
            return cached[0]
        m = pod["metadata"]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
            "audiences": [audience] if audience else None, "expirationSeconds": seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": m.get("name"), "uid": m.get("uid")}}}
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        try:
            out = await self.worker.agent.client.create(SERVICEACCOUNTS, body, m.get("namespace", "default"),
                                                        subresource="token", name=sa)
        except errors.StatusError as e:
            raise MountError(f"failed to fetch token: {e}") from None
        token = str((out.get("status") or {}).get("token", "")).encode()
        self._tokens[(audience, seconds)] = (token, now + 0.8 * seconds)
        return token

    async def _object_files(self, pod: dict[str, Any], kind: str, src: dict[str, Any], mode: int) -> Files:
        """The files of a configMap or secret volume (or projection)."""
        name = src.get("name", "")
        obj = await self._fetch(kind, pod["metadata"].get("namespace", "default"), name)
        if obj is None:
            if src.get("optional"):
                return {}
            raise MountError(f'{kind} "{name}" not found')
        data: dict[str, bytes] = {}
        if kind == "secret":
            data = {k: base64.b64decode(val) for k, val in (obj.get("data") or {}).items()}
        else:
            data = {k: str(val).encode() for k, val in (obj.get("data") or {}).items()}
            data.update({k: base64.b64decode(val) for k, val in (obj.get("binaryData") or {}).items()})
        items = src.get("items")
        if not items:
            return {k: (val, mode) for k, val in data.items()}
        out: Files = {}
        for it in items:
            key = it.get("key", "")
            if key not in data:
                if src.get("optional"):
                    continue
                what = "config key" if kind == "configmap" else "secret key"
                raise MountError(f"{kind} references non-existent {what}: {key}")
            out[it.get("path") or key] = (data[key], it.get("mode", mode))
        return out

    def _downward_files(self, pod: dict[str, Any], items: list[dict[str, Any]], mode: int) -> Files:
        out: Files = {}
        for it in items:
            if "fieldRef" in it:
                value = field_value(pod, (it["fieldRef"] or {}).get("fieldPath", ""))
            elif "resourceFieldRef" in it:
                ref = it["resourceFieldRef"] or {}
                spec = pod.get("spec", {})
                container = next((c for c in spec.get("containers") or []
                                  if c.get("name") == ref.get("containerName")), {})
                value = self.worker.agent.env.resource_value(pod, container, ref)
            else:
                continue
            out[it.get("path", "")] = (value.encode(), it.get("mode", mode))
        return out

    async def _projected_files(self, pod: dict[str, Any], src: dict[str, Any]) -> Files:
        mode = src.get("defaultMode", 0o644)
        out: Files = {}
        for s in src.get("sources") or []:
            if "configMap" in s:
                out.update(await self._object_files(pod, "configmap", s["configMap"] or {}, mode))
            elif "secret" in s:
                out.update(await self._object_files(pod, "secret", s["secret"] or {}, mode))
            elif "downwardAPI" in s:
                out.update(self._downward_files(pod, (s["downwardAPI"] or {}).get("items") or [], mode))
            elif "serviceAccountToken" in s:
                src_token = s["serviceAccountToken"] or {}
                out[src_token.get("path", "token")] = (await self._token(pod, src_token), mode)
        return out

    async def _claim_path(self, pod: dict[str, Any], claim: str) -> str:
        ns = pod["metadata"].get("namespace", "default")
        client = self.worker.agent.client
        try:
            pvc = await client.get(PVCS, claim, ns)
        except errors.StatusError as e:
            raise MountError(f'persistentvolumeclaim "{claim}" not found' if e.code == 404 else str(e)) from None
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if (pvc.get("status") or {}).get("phase") != "Bound" or not pv_name:
            raise MountError(f"error processing PVC {ns}/{claim}: PVC is not bound")
        try:
            pv = await client.get(PVS, pv_name)
        except errors.StatusError as e:
            raise MountError(f'persistentvolume "{pv_name}" not found' if e.code == 404 else str(e)) from None
        spec = pv.get("spec") or {}
        if "hostPath" in spec:
            return _host_path(dict(spec["hostPath"] or {}, type=(spec["hostPath"] or {}).get("type")
                                   or "DirectoryOrCreate"))
        if "local" in spec:
            return _host_path({"path": (spec["local"] or {}).get("path", ""), "type": "Directory"})
        raise MountError(f'persistentvolume "{pv_name}" is of a type this node cannot mount '
                         f"(only hostPath and local)")

    # -- what a container mounts ----------------------------------------------
    def mounts_for(self, container: dict[str, Any], env: list[tuple[str, str]]) -> list[Mount]:
        values = dict(env)
        out = []
        for vm in container.get("volumeMounts") or []:
            base = self.paths.get(vm.get("name", ""))
            if base is None:
                continue
            sub = vm.get("subPath") or expand(vm.get("subPathExpr") or "", values.get)
            host = base
            if sub:
                host = os.path.join(base, sub.lstrip("/"))
                if not os.path.lexists(host):
                    os.makedirs(host, exist_ok=True)
            out.append(Mount(container_path=vm.get("mountPath", ""), host_path=host,
                             readonly=bool(vm.get("readOnly"))))
        return out

    def _memory_volume_size(self, pod: dict[str, Any], src: dict[str, Any]) -> int:
        """The kubelet's size for a memory-backed emptyDir (SizeMemoryBackedVolumes):
        the node's allocatable memory, else less: the pod's memory limit (when every
        container has one), then the volume's sizeLimit, whichever is smaller."""
        size = int(parse_quantity(self.worker.agent.env.node_allocatable.get("memory") or "0"))
        pod_limit = cgroups.pod_resources(pod).get("memory_limit_in_bytes") or 0
        if 0 < pod_limit and (size <= 0 or pod_limit <= size):
            size = pod_limit
        if src.get("sizeLimit") is not None:
            limit = int(parse_quantity(src["sizeLimit"]))
            if 0 < limit and (size <= 0 or limit <= size):
                size = limit
        if size <= 0:
            raise ValueError("no size for it: the node reports no allocatable memory")
        return size

    def cleanup(self) -> None:
        """Remove what lives outside the pod directory (memory-backed emptyDirs);
        the pod directory itself goes with the pod's logs."""
        for path in self._tmpfs:
            mountns.unmount(path)
        self._tmpfs.clear()
        if self.worker.agent.memory_dir is not None:
            shutil.rmtree(self.memory_root, ignore_errors=True)


def _share(path: Path, pod: dict[str, Any]) -> None:
    """An emptyDir's mode as the kubelet makes it: 0777, so containers of any user
    write there; with the pod's fsGroup, owned by that group and setgid, so files
    made inside belong to it (SetVolumeOwnership)."""
    fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    mode = 0o777
    if fs_group is not None and os.geteuid() == 0:
        os.chown(path, -1, int(fs_group))
        mode |= stat.S_ISGID
    if stat.S_IMODE(os.stat(path).st_mode) != mode:
        os.chmod(path, mode)


def _changes_often(v: dict[str, Any]) -> bool:
    """A volume whose files follow objects or labels users change (re-read every
    RESYNC_INTERVAL): not the token volume's sources — a token (renewed on its own
    schedule), the cluster's CA, the pod's namespace, name or uid."""
    if any(k in v for k in ("configMap", "secret", "downwardAPI")):
        return True
    for s in (v.get("projected") or {}).get("sources") or []:
        if "secret" in s or ("configMap" in s and (s["configMap"] or {}).get("name") != meta.ROOT_CA_CONFIGMAP):
            return True
        if "downwardAPI" in s and any(((it.get("fieldRef") or {}).get("fieldPath") not in _FIXED_FIELDS)
                                      for it in (s["downwardAPI"] or {}).get("items") or []):
            return True
    return False


_reads: dict[tuple[int, str, str, str], tuple[float, asyncio.Future[dict[str, Any] | None]]] = {}


async def _shared_read(key: tuple[int, str, str, str], read: Any) -> dict[str, Any] | None:
    """read() once per OBJECT_TTL for every pod of the node asking for the same
    object (the token volume's kube-root-ca.crt is in every pod of a namespace):
    a burst of pod starts or 50 idle pods' resyncs make one request, not one each."""
    now = time.monotonic()
    hit = _reads.get(key)
    if hit is None or now - hit[0] >= OBJECT_TTL:
        if len(_reads) > 1024:  # drop what nobody asked for lately
            for k in [k for k, (t, _) in _reads.items() if now - t >= OBJECT_TTL]:
                del _reads[k]
        hit = _reads[key] = (now, asyncio.ensure_future(read()))
    return await asyncio.shield(hit[1])


def _host_path(src: dict[str, Any]) -> str:
    path, typ = src.get("path", ""), src.get("type") or ""
    p = Path(path)
    if typ == "DirectoryOrCreate":
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MountError(f"hostPath type check failed: {path}: {e.strerror}") from None
    elif typ == "FileOrCreate" and not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    checks = {"Directory": (p.is_dir, "is not a directory"), "File": (p.is_file, "is not a file"),
              "Socket": (lambda: p.exists() and stat.S_ISSOCK(p.stat().st_mode), "is not a socket file"),
              "CharDevice": (lambda: p.exists() and stat.S_ISCHR(p.stat().st_mode), "is not a character device"),
              "BlockDevice": (lambda: p.exists() and stat.S_ISBLK(p.stat().st_mode), "is not a block device")}
    if typ in checks and not checks[typ][0]():
        raise MountError(f"hostPath type check failed: {path} {checks[typ][1]}")
    return path


def write_atomic(target: Path, files: Files) -> bool:
    """Make `target` hold exactly `files`, as the kubelet's AtomicWriter: readers
    see the old set or the new set, never a mix. Returns False when nothing changed.
    os-level calls, and no look for leftovers in a directory made just now: this
    runs for every pod's token volume at its start."""
    t = str(target)
    try:
        os.mkdir(t)
        fresh = True
    except FileExistsError:
        fresh = False
    except FileNotFoundError:
        os.makedirs(t, exist_ok=True)
        fresh = True
    data_link = f"{t}/..data"
    old = None
    if not fresh:
        with contextlib.suppress(OSError):
            old = f"{t}/{os.readlink(data_link)}"
        if old is not None and _holds(Path(old), files):
            return False
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S', time.gmtime())}.{secrets.token_hex(4)}"
    os.mkdir(f"{t}/{stamp}")
    for rel, (content, mode) in files.items():
        rel = rel.lstrip("/")
        f = f"{t}/{stamp}/{rel}"
        if "/" in rel:
            os.makedirs(os.path.dirname(f), exist_ok=True)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, content)
            os.fchmod(fd, mode & 0o7777)  # exactly the mode asked for, whatever the umask
        finally:
            os.close(fd)
    tops = {rel.lstrip("/").split("/", 1)[0] for rel in files}
    if fresh:  # nothing to replace: the links straight away
        os.symlink(stamp, data_link)
        for top in tops:
            os.symlink(f"..data/{top}", f"{t}/{top}")
        return True
    tmp = f"{t}/..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(stamp, tmp)
    os.replace(tmp, data_link)
    for top in tops:
        link = target / top
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"..data/{top}", link)
    for entry in target.iterdir():
        if not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink() if entry.is_symlink() else shutil.rmtree(entry, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return True


def _holds(d: Path, files: Files) -> bool:
    found = {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}
    if found != {rel.lstrip("/") for rel in files}:
        return False
    for rel, (content, mode) in files.items():
        f = d / rel.lstrip("/")
        if f.read_bytes() != content or (f.stat().st_mode & 0o7777) != (mode & 0o7777):
            return False
    return True
