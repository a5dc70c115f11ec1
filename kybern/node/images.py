"""The node's local image store: where a runtime finds the files a container
starts from.

An image here is a directory tree plus a small config (default entrypoint, cmd,
env, workingDir, user), registered under a reference such as `demo:v1`. References are
normalised as docker does, so `demo`, `demo:latest` and
`docker.io/library/demo:latest` name the same image. Nothing is ever fetched from
a registry: an image is present because someone imported it
(`kybern image import NAME:TAG DIR|FILE.tar`) or because it is one of the sample images
shipped with kybern, seeded on first use.

Layout under `<data_dir>/images/`:

    <key>/image.json     {"ref", "name", "id", "size", "created", "config"}
    <key>/rootfs/        the files; never modified after import
    .seeded              marker: the sample images imported once (one `seeded REF` line each)

`<key>` is a hash of the normalised reference, so any reference maps to a safe
directory name. Imports are written to a temporary directory and renamed into
place, so a reader never sees half an image.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
SAMPLE_DIR = Path(__file__).with_name("sample_images")

_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")


class InvalidReference(ValueError):
    """A string that is not a valid image reference (docker's wording)."""


class ImageNotFound(LookupError):
    pass


@dataclass(frozen=True)
class ImageRef:
    """A parsed, normalised image reference."""

    domain: str
    path: str  # e.g. "library/nginx"
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        """The full normalised reference: docker.io/library/nginx:latest."""
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def familiar(self) -> str:
        """The short form people type: nginx:latest, myreg:5000/app:1."""
        repo = self.path
        if self.domain == DEFAULT_DOMAIN:
            if repo.startswith(OFFICIAL_PREFIX) and repo.count("/") == 1:
                repo = repo[len(OFFICIAL_PREFIX):]
        else:
            repo = f"{self.domain}/{repo}"
        if self.tag:
            repo += f":{self.tag}"
        if self.digest:
            repo += f"@{self.digest}"
        return repo

    def __str__(self) -> str:
        return self.familiar


@functools.lru_cache(maxsize=1024)  # every container start parses its image's name a few times
def parse_ref(ref: str) -> ImageRef:
    """Parse and normalise `ref` as docker's reference.ParseNormalizedNamed does,
    then add the default tag `latest` when neither tag nor digest is given."""
    s = ref.strip()
    if not s:
        raise InvalidReference("invalid reference format")
    digest = None
    if "@" in s:
        s, digest = s.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference("invalid reference format")
    tag = None
    slash = s.rfind("/")
    colon = s.rfind(":")
    if colon > slash:
        s, tag = s[:colon], s[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference("invalid reference format")
    first, _, rest = s.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, s
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if any(c.isupper() for c in path):
        raise InvalidReference("invalid reference format: repository name must be lowercase")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if not all(_PATH_COMPONENT.match(p) for p in path.split("/")):
        raise InvalidReference("invalid reference format")
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(domain, path, tag, digest)


def normalize(ref: str) -> str:
    """The full normalised name: `demo` -> `docker.io/library/demo:latest`."""
    return parse_ref(ref).name


@dataclass
class Image:
    """One stored image."""

    ref: str  # full normalised name
    id: str  # sha256:<hex> of the content and config
    rootfs: Path
    size: int
    created: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def familiar(self) -> str:
        return parse_ref(self.ref).familiar

    @property
    def repo_digest(self) -> str:
        """What containerStatuses[].imageID shows: repository@sha256:..."""
        return f"{parse_ref(self.ref).repository}@{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.familiar, "name": self.ref, "id": self.id, "size": self.size,
                "created": self.created, "config": self.config, "rootfs": str(self.rootfs),
                "repo_digest": self.repo_digest}


class ImageStore:
    """The image store of one node (one data dir)."""

    def __init__(self, data_dir: str | os.PathLike[str], *, seed_samples: bool = True) -> None:
        self.root = Path(data_dir) / "images"
        self._seed = seed_samples
        self._loaded: dict[Path, tuple[tuple[int, int, int], Image]] = {}
        self._seeded = False  # the samples' marker was seen by this process

    # -- queries ----------------------------------------------------------
    def get(self, ref: str) -> Image | None:
        """The image `ref` names (by tag or by digest), or None."""
        self._ensure()
        parsed = parse_ref(ref)
        if parsed.tag:
            tagged = ImageRef(parsed.domain, parsed.path, parsed.tag, None)
            img = self._load(self.root / _key(tagged.name))
            if img is not None and (parsed.digest is None or img.id == parsed.digest):
                return img
            return None
        for img in self.list_images():  # by digest only: repository@sha256:...
            if img.id == parsed.digest and parse_ref(img.ref).repository == parsed.repository:
                return img
        return None

    def list_images(self) -> list[Image]:
        self._ensure()
        out = []
        for d in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if d.is_dir() and not d.name.startswith("."):
                img = self._load(d)
                if img is not None:
                    out.append(img)
        return sorted(out, key=lambda i: i.ref)

    def list(self) -> list[dict[str, Any]]:
        """All images as plain dicts (ref, name, id, size, created, config, rootfs)."""
        return [i.to_dict() for i in self.list_images()]

    # -- changes ----------------------------------------------------------
    def import_dir(self, ref: str, directory: str | os.PathLike[str], *,
                   config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Copy `directory` into the store as image `ref` (replacing an image of
        the same name). `config` may set entrypoint, cmd (lists), env (list of
        "K=V"), workingDir, user. Returns the stored image as a dict."""
        self._ensure()
        return self._import(ref, Path(directory), config or {}).to_dict()

    def import_archive(self, ref: str, archive: str | os.PathLike[str], *,
                       config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Import an image tarball (docker archive, OCI layout archive or plain rootfs
        tarball; image_archive.py) as `ref`; `config` overrides what the archive's
        image config says, key by key."""
        from kybern.node.image_archive import unpack

        self._ensure()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.root))
        try:
            found = unpack(archive, tmp)
            return self._import(ref, tmp, {**found, **(config or {})}).to_dict()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def remove(self, ref: str) -> bool:
        """Remove image `ref`; False if there was none. Running containers keep
        their own copy of the files, so removal never disturbs them."""
        self._ensure()
        img = self.get(ref)
        if img is None:
            return False
        target = img.rootfs.parent
        trash = target.with_name(f".trash-{target.name}-{os.getpid()}")
        os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    # -- internals --------------------------------------------------------
    def _import(self, ref: str, directory: Path, config: dict[str, Any]) -> Image:
        parsed = parse_ref(ref)
        if parsed.digest:
            raise InvalidReference("cannot import an image by digest; give NAME:TAG")
        if not directory.is_dir():
            raise NotADirectoryError(f"{directory} is not a directory")
        if self.root.resolve().is_relative_to(directory.resolve()):
            raise ValueError(f"cannot import {directory}: it contains the image store itself")
        self.root.mkdir(parents=True, exist_ok=True)
        cfg = _clean_config(config)
        tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=self.root))
        try:
            rootfs = tmp / "rootfs"
            shutil.copytree(directory, rootfs, symlinks=True)
            digest, size = _digest(rootfs, cfg)
            meta = {"ref": parsed.name, "id": f"sha256:{digest}", "size": size,
                    "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "config": cfg}
            (tmp / "image.json").write_text(json.dumps(meta, indent=2))
            target = self.root / _key(parsed.name)
            if target.exists():
                trash = target.with_name(f".trash-{target.name}-{os.getpid()}")
                os.rename(target, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        img = self._load(target)
        assert img is not None
        return img

    def _load(self, d: Path) -> Image | None:
        """The image stored in `d`; parsed again only when its image.json changed
        (an import replaces the directory, so the file's inode changes): every
        container start looks its image up."""
        path = d / "image.json"
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._loaded.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        img = self._parse(d, meta)
        self._loaded[path] = (stamp, img)
        return img

    @staticmethod
    def _parse(d: Path, meta: dict[str, Any]) -> Image:
        return Image(ref=meta["ref"], id=meta["id"], rootfs=d / "rootfs", size=meta.get("size", 0),
                     created=meta.get("created", ""), config=meta.get("config") or {})

    def _ensure(self) -> None:
        """Seed each sample image the first time this store is used with it (a
        sample added in a later version joins an older store once). The marker
        keeps a removed sample removed."""
        if self._seeded:
            return
        self._seeded = True
        if not self._seed:
            return
        marker = self.root / ".seeded"
        try:  # a marker from before it named its images: the first three samples
            done = set(re.findall(r"^seeded (\S+)$", marker.read_text(), re.M)) or set(_FIRST_SAMPLES)
        except FileNotFoundError:
            done = set()
        specs = [json.loads((d / "image.json").read_text()) | {"dir": d}
                 for d in (sorted(SAMPLE_DIR.iterdir()) if SAMPLE_DIR.is_dir() else [])
                 if (d / "image.json").is_file()]
        new = [s for s in specs if s["ref"] not in done]
        if not new:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        for spec in new:
            if not (self.root / _key(normalize(spec["ref"]))).exists():
                with tempfile.TemporaryDirectory(dir=self.root, prefix=".sample-") as tmp:
                    rootfs = Path(tmp) / "rootfs"
                    shutil.copytree(spec["dir"] / "rootfs", rootfs, symlinks=True)
                    for rel in spec.get("executables") or []:  # a wheel or sdist may have lost the mode
                        os.chmod(rootfs / rel, 0o755)
                    self._import(spec["ref"], rootfs, spec.get("config") or {})
            done.add(spec["ref"])
        marker.write_text("sample images imported; delete this file to import them again\n" +
                          "".join(f"seeded {r}\n" for r in sorted(done)))


_FIRST_SAMPLES = ("demo:v1", "update-demo:kitten", "update-demo:nautilus")


def _key(full_name: str) -> str:
    return hashlib.sha256(full_name.encode()).hexdigest()[:32]


def _clean_config(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("entrypoint", "cmd"):
        v = config.get(k)
        if v is not None:
            if isinstance(v, str) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"image config {k} must be a list of strings")
            out[k] = list(v)
    env = config.get("env")
    if env is not None:
        if isinstance(env, dict):
            env = [f"{k}={v}" for k, v in env.items()]
        out["env"] = [str(e) for e in env]
    if config.get("workingDir"):
        out["workingDir"] = str(config["workingDir"])
    if config.get("user"):  # "name", "uid", "uid:gid", "name:group": who runs it (the linux runtime)
        out["user"] = str(config["user"])
    return out


def _digest(rootfs: Path, config: dict[str, Any]) -> tuple[str, int]:
    """A content digest over paths, modes and bytes (and the config), so the same
    tree imported twice gets the same id."""
    h = hashlib.sha256()
    size = 0
    for dirpath, dirnames, filenames in os.walk(rootfs):
        dirnames.sort()
        for fn in sorted(filenames):
            p = Path(dirpath, fn)
            rel = p.relative_to(rootfs).as_posix()
            st = p.lstat()
            h.update(f"{rel}\0{st.st_mode & 0o777}\0".encode())
            if p.is_symlink():
                h.update(os.readlink(p).encode())
            else:
                size += st.st_size
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            h.update(b"\0")
    h.update(json.dumps(config, sort_keys=True).encode())
    return h.hexdigest(), size
