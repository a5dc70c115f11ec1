"""The storage contract: a revisioned key-value log with etcd's model.

One global revision increases with every write. Every key carries the revision it
was created at and last modified at (its resourceVersion). Updates and deletes
can be guarded by the expected mod revision. Watches replay history from a
revision, and a compacted revision answers `Compacted` (→ 410 Gone upstream).

Backends (sqlite.py, etcd.py) implement `Store`; the apiserver is its only user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KV:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # "PUT" or "DELETE"
    kv: KV  # for DELETE: the key with the value it had, mod_revision = the delete's revision
    prev: KV | None
    created: bool = False  # a PUT that created the key


class StorageError(Exception):
    pass


class KeyExists(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class Conflict(StorageError):
    """A guarded write lost: `current` is what the key holds now."""

    def __init__(self, key: str, current: KV | None) -> None:
        super().__init__(key)
        self.key = key
        self.current = current


class Compacted(StorageError):
    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(f"required revision {requested} has been compacted (compact {compact_revision})")
        self.requested = requested
        self.compact_revision = compact_revision


class FutureRevision(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class ListResult:
    kvs: list[KV]
    revision: int  # the revision the list is consistent at
    more: bool  # more keys exist after the last one (for continue tokens)


class Store(Protocol):
    async def get(self, key: str) -> tuple[KV | None, int]: ...

    async def mod_revision(self, key: str) -> int:
        """A consistent read, as get(), of only the revision of the key's latest
        write: it equals a revision R > 0 exactly when the key now holds the value
        put at R. (A deleted key gives 0 or its deletion's revision, a key never
        written 0.) Cheaper than get() where the value is known already."""
        ...

    async def list(self, prefix: str, *, revision: int = 0, start: str = "",
                   limit: int = 0) -> ListResult: ...

    async def count(self, prefix: str) -> int: ...

    async def create(self, key: str, value: bytes) -> int: ...

    async def update(self, key: str, value: bytes, expected_revision: int) -> int: ...

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KV]: ...

    def watch(self, prefix: str, revision: int) -> AsyncIterator[Event]:
        """Events for keys under prefix with mod revision > `revision`, in revision order."""
        ...

    async def current_revision(self) -> int: ...

    async def compact(self, revision: int) -> None: ...

    async def close(self) -> None: ...


def prefix_end(prefix: str) -> str:
    """The first key after every key that starts with prefix (etcd's range end)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
