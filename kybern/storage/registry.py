"""Backends by URL scheme: `sqlite:///path/state.db` (default) and
`etcd://host:port[,host:port][/prefix]` (kybern/storage/etcd.py; `etcd+https://` for TLS)."""

from __future__ import annotations

from urllib.parse import urlparse

from kybern.storage.interface import Store


def open_store(url: str) -> Store:
    u = urlparse(url)
    if u.scheme in ("", "sqlite"):
        from kybern.storage.sqlite import SQLiteStore

        path = u.path if u.scheme else url
        return SQLiteStore(path)
    if u.scheme in ("etcd", "etcd+https", "http", "https"):
        from kybern.storage.etcd import EtcdStore

        return EtcdStore(url)
    raise ValueError(f"unknown datastore {url!r}: use sqlite:///PATH or etcd://HOST:PORT")
