"""Backends by URL scheme: `sqlite:///path/state.db` (default) and
`etcd://host:port` (kybern/storage/etcd.py, when present)."""

from __future__ import annotations

from urllib.parse import urlparse

from kybern.storage.interface import Store


def open_store(url: str) -> Store:
    u = urlparse(url)
    if u.scheme in ("", "sqlite"):
        from kybern.storage.sqlite import SQLiteStore

        path = u.path if u.scheme else url
        return SQLiteStore(path)
    if u.scheme in ("etcd", "http", "https"):
        from kybern.storage import etcd  # type: ignore[attr-defined]

        return etcd.EtcdStore(url)  # type: ignore[no-any-return]
    raise ValueError(f"unknown datastore {url!r}: use sqlite:///PATH or etcd://HOST:PORT")
