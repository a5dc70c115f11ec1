"""Backends for the storage contract suite: every test runs once on SQLite (a
temp file) and once on a real etcd (one process per session, each test under
its own key prefix so tests do not see each other's keys)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kybern.storage.interface import Store
from kybern.storage.registry import open_store
from tests.unit.storage.etcd_server import ETCD, EtcdServer

_prefixes = itertools.count()


class Backend:
    """Opens stores on one backend's data, and restarts that backend."""

    def __init__(self, name: str, url: str, server: EtcdServer | None = None) -> None:
        self.name, self.url, self.server = name, url, server
        self.opened: list[Store] = []

    def open(self) -> Store:
        s = open_store(self.url)
        self.opened.append(s)
        return s

    def restart(self) -> None:
        """Stop and start the datastore on the same data (SQLite has no server)."""
        if self.server is not None:
            self.server.restart()

    async def close_all(self) -> None:
        for s in self.opened:
            await s.close()


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    if ETCD is None:
        pytest.skip("etcd binary not found: `apt-get install etcd-server` (scripts/test does)")
    srv = EtcdServer(tmp_path_factory.mktemp("etcd") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture(params=["sqlite", "etcd"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        b = Backend("sqlite", f"sqlite://{tmp_path / 'state.db'}")
    else:
        srv: EtcdServer = request.getfixturevalue("etcd_server")
        b = Backend("etcd", srv.url(f"/kybern-test-{next(_prefixes)}"), srv)
    yield b
    await b.close_all()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()
