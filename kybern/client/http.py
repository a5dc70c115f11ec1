"""The API client every kybern component uses: async verbs over HTTP(S) against
any Kubernetes-compatible apiserver (ours or upstream).

Objects are plain dicts. Failures arrive as `errors.StatusError`, the same class
the apiserver raises, so `e.reason == "NotFound"` reads the same on both sides.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from kybern.client.resources import Resource
from kybern.machinery import errors

PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


# connections a client keeps for its requests (watches and streams have their own)
REQUEST_CONNECTIONS = 64


class Client:
    """Async Kubernetes API client. `server` is a base URL; `token` a bearer token,
    or `cert_file`/`key_file` a client certificate; `ca_file` the CA bundle that
    signed the server (None skips verification only for plain http)."""

    def __init__(self, server: str, *, token: str | None = None, ca_file: str | None = None,
                 user_agent: str = "kybern", connections: int = REQUEST_CONNECTIONS,
                 cert_file: str | None = None, key_file: str | None = None) -> None:
        self.server = server.rstrip("/")
        self._headers = {"User-Agent": user_agent}
        self.ca_file = ca_file  # also what the root CA publisher (controllers/rootca.py) publishes
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._ssl: ssl.SSLContext | bool = False
        if self.server.startswith("https://"):
            ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
            if cert_file:  # a client certificate (x509 authentication: CN the user, O the groups)
                ctx.load_cert_chain(cert_file, key_file)
            self._ssl = ctx
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._streams: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """For requests: at most `connections` connections (64), kept alive and
        reused; more calls in flight queue for one. Fewer (8) cost the scheduler
        a third of its binds per second: the apiserver batches what arrives
        together (one SQLite commit, one watch frame), so it does less per call
        when many are in flight (docs/benchmarks.md, issue 4)."""
        if self._session is None or self._session.closed:
            self._session = self._new_session(self._connections)
        return self._session

    @property
    def streams(self) -> aiohttp.ClientSession:
        """For watches and log streams: one connection each, for as long as they last."""
        if self._streams is None or self._streams.closed:
            self._streams = self._new_session(0)
        return self._streams

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers=self._headers,
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=limit),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        for s in (self._session, self._streams):
            if s is not None:
                await s.close()

    # -- raw --------------------------------------------------------------
    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        async with self.session.request(method, self.server + path, params=_clean(params),
                                        data=data, headers=headers) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise _error(resp.status, raw)
            if not raw:
                return None
            ctype = resp.headers.get("Content-Type", "")
            if "json" in ctype:
                return orjson.loads(raw)
            return raw.decode(errors="replace")

    # -- verbs ------------------------------------------------------------
    async def get(self, res: Resource, name: str, namespace: str | None = None,
                  subresource: str | None = None) -> dict[str, Any]:
        return await self.request("GET", res.object_path(name, namespace, subresource))

    async def list(self, res: Resource, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   resource_version: str | None = None, limit: int | None = None,
                   continue_: str | None = None) -> dict[str, Any]:
        params = {"labelSelector": label_selector, "fieldSelector": field_selector,
                  "resourceVersion": resource_version, "limit": limit, "continue": continue_}
        return await self.request("GET", res.collection_path(namespace), params=params)

    async def create(self, res: Resource, obj: dict[str, Any], namespace: str | None = None,
                     *, subresource: str | None = None, name: str | None = None) -> dict[str, Any]:
        ns = namespace or obj.get("metadata", {}).get("namespace")
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        path = res.object_path(name, ns, subresource) if subresource and name else res.collection_path(ns)
        return await self.request("POST", path, body=obj)

    async def update(self, res: Resource, obj: dict[str, Any], *,
                     subresource: str | None = None) -> dict[str, Any]:
        meta = obj["metadata"]
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        return await self.request("PUT", res.object_path(meta["name"], meta.get("namespace"), subresource),
                                  body=obj)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None,
                    field_manager: str | None = None) -> dict[str, Any]:
        return await self.request("PATCH", res.object_path(name, namespace, subresource),
                                  params={"fieldManager": field_manager},
                                  body=patch, content_type=PATCH_TYPES[patch_type])

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> Any:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            body["preconditions"] = preconditions
        return await self.request("DELETE", res.object_path(name, namespace), body=body)

    async def watch(self, res: Resource, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events ({"type", "object"}) until the server ends the stream.
        An expired revision arrives as an ERROR event, as from kube-apiserver."""
        params = {"watch": "true", "resourceVersion": resource_version,
                  "labelSelector": label_selector, "fieldSelector": field_selector,
                  "timeoutSeconds": timeout_seconds,
                  "allowWatchBookmarks": "true" if allow_bookmarks else None}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.streams.get(self.server + res.collection_path(namespace),
                                    params=_clean(params), timeout=timeout) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.read())
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                if b"\n" not in chunk:
                    continue
                *lines, buf = buf.split(b"\n")  # one split per chunk: a burst of events stays linear
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)

    async def stream_text(self, path: str, params: dict[str, Any] | None = None) -> AsyncIterator[bytes]:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.streams.get(self.server + path, params=_clean(params), timeout=timeout) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.read())
            async for chunk in resp.content.iter_any():
                yield chunk


def _clean(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: str(v) for k, v in params.items() if v is not None}


def _error(code: int, raw: bytes) -> errors.StatusError:
    try:
        body = orjson.loads(raw)
        if isinstance(body, dict) and body.get("kind") == "Status":
            return errors.StatusError.from_status(body, code)
    except orjson.JSONDecodeError:
        pass
    return errors.StatusError(code, "Unknown", raw.decode(errors="replace")[:500])


async def wait_ready(client: Client, timeout: float = 10.0) -> None:
    """Wait until the apiserver answers /readyz."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await client.request("GET", "/readyz")
            return
        except (aiohttp.ClientError, errors.StatusError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
