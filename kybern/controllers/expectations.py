"""Controller expectations (upstream pkg/controller/controller_utils.go): a
controller that just asked for N creations must not act on a cache that does not
show them yet, or it would create them twice. Each key records how many adds it
still waits to see and which deletions (by pod key); until they are observed, or
the record expires, the controller only updates status."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

EXPECTATIONS_TTL = 300.0  # upstream ExpectationsTimeout: 5 minutes


@dataclass
class _Record:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    at: float = field(default_factory=time.monotonic)


class Expectations:
    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}

    def satisfied(self, key: str) -> bool:
        r = self._records.get(key)
        if r is None:
            return True
        if r.adds <= 0 and not r.deletes:
            return True
        return time.monotonic() - r.at > EXPECTATIONS_TTL

    def expect_creations(self, key: str, n: int) -> None:
        self._records[key] = _Record(adds=n)

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        self._records[key] = _Record(deletes=set(pod_keys))

    def creation_observed(self, key: str) -> None:
        r = self._records.get(key)
        if r is not None and r.adds > 0:
            r.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        r = self._records.get(key)
        if r is not None:
            r.deletes.discard(pod_key)

    def delete(self, key: str) -> None:
        self._records.pop(key, None)
