"""Writing the `kybern` context into a kubeconfig, merged with what is there."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml


def _upsert(items: list[dict[str, Any]], name: str, key: str, value: dict[str, Any]) -> None:
    for it in items:
        if it.get("name") == name:
            it[key] = value
            return
    items.append({"name": name, key: value})


def write_context(path: Path, *, name: str, server: str, ca_file: Path, token: str,
                  set_current: bool = True) -> None:
    cfg: dict[str, Any] = {}
    if path.exists():
        cfg = yaml.safe_load(path.read_text()) or {}
    cfg.setdefault("apiVersion", "v1")
    cfg.setdefault("kind", "Config")
    cfg.setdefault("preferences", {})
    for k in ("clusters", "users", "contexts"):
        if not isinstance(cfg.get(k), list):
            cfg[k] = []
    ca = base64.b64encode(ca_file.read_bytes()).decode()
    _upsert(cfg["clusters"], name, "cluster", {"server": server, "certificate-authority-data": ca})
    _upsert(cfg["users"], f"{name}-admin", "user", {"token": token})
    _upsert(cfg["contexts"], name, "context", {"cluster": name, "user": f"{name}-admin",
                                               "namespace": "default"})
    if set_current or not cfg.get("current-context"):
        cfg["current-context"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
