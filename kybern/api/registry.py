"""The resource registry: every served kind, what URL it lives at, its scope,
short names, subresources, the upstream OpenAPI definition that validates it, and
the strategy that gives it behaviour (defaults, validation, status handling).

Adding a kind is one `ResourceInfo(...)` line in a group module (kybern/api/
core.py, apps.py, ...); discovery, OpenAPI, REST and tables all read from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kybern.api.strategy import Strategy

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    definition: str  # upstream OpenAPI definition name, e.g. "io.k8s.api.apps.v1.Deployment"
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", "log", "binding", "eviction", ...
    verbs: tuple[str, ...] = VERBS
    strategy: "Strategy | None" = field(default=None, compare=False, hash=False)
    # the group whose storage keys hold this kind, when another group's do
    # (events.k8s.io Events are core Events: /registry/core/events/...)
    storage_group: str | None = None
    # a CRD's spec.names.singular; built-in kinds use the lower-cased kind, as upstream
    singular_name: str = ""

    @property
    def singular(self) -> str:
        return self.singular_name or self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def qualified(self) -> str:
        """`deployments.apps` — the name upstream uses in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


class Registry:
    def __init__(self) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceInfo] = {}
        self._by_kind: dict[tuple[str, str], ResourceInfo] = {}

    def add(self, info: ResourceInfo) -> None:
        self._by_path[(info.group, info.version, info.plural)] = info
        self._by_kind[(info.api_version, info.kind)] = info

    def remove(self, group: str, version: str, plural: str) -> None:
        info = self._by_path.pop((group, version, plural), None)
        if info:
            self._by_kind.pop((info.api_version, info.kind), None)

    def get(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceInfo | None:
        return self._by_kind.get((api_version, kind))

    def all(self) -> list[ResourceInfo]:
        return list(self._by_path.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions served, preferred first."""
        out: dict[str, list[str]] = {}
        for info in self._by_path.values():
            vs = out.setdefault(info.group, [])
            if info.version not in vs:
                vs.append(info.version)
        for vs in out.values():
            vs.sort(key=_version_priority)
        return out


def _version_priority(v: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    import re

    m = re.match(r"v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0)
    major = int(m.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor)
