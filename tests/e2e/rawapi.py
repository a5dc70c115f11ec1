"""Raw HTTP access to a test cluster's apiserver, for the tests that must see
exact status codes, headers and bodies (what a client library would hide)."""

from __future__ import annotations

import json
from typing import Any

import urllib3
import yaml


class RawAPI:
    """A keep-alive HTTPS connection pool with the cluster admin's token."""

    def __init__(self, cluster: Any) -> None:
        cfg = yaml.safe_load(cluster.kubeconfig.read_text())
        user = next(u for u in cfg["users"] if u["name"] == "kybern-admin")["user"]
        self.server = cluster.server
        self.token = user["token"]
        self.pool = urllib3.PoolManager(ca_certs=str(cluster.dir / "data" / "pki" / "ca.crt"),
                                        cert_reqs="CERT_REQUIRED", retries=False,
                                        timeout=urllib3.Timeout(connect=5, read=30))

    def request(self, method: str, path: str, body: bytes | dict | list | None = None,
                ctype: str = "application/json", headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, decoded JSON body or the raw text when it is not JSON)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        h = {"Authorization": f"Bearer {self.token}", "Content-Type": ctype, "Accept": "application/json",
             **(headers or {})}
        r = self.pool.request(method, self.server + path, body=body, headers=h, preload_content=True)
        try:
            data = json.loads(r.data) if r.data else None
        except ValueError:
            data = r.data.decode(errors="replace")
        return r.status, dict(r.headers), data
