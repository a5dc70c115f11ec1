"""etcd v3 backend: the Store contract over etcd's JSON gRPC-gateway.

etcd already has the model interface.py describes (global revision, per-key
create/mod revisions, guarded transactions, watch from a revision, compaction),
so this is a thin translation, done the way kube-apiserver's etcd3 store does it
(staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go):

- create = txn(create_revision(key) == 0 → put); update/delete = txn(mod_revision
  (key) == expected → put/delete, else → range to return what the key holds now).
- list = range [start, prefix_end) at a revision with a limit; `more` is etcd's.
- watch = one streaming `POST /v3/watch` per watcher from revision+1 with
  prev_kv, so DELETE events carry the deleted value (etcd's DELETE kv has none).

It speaks HTTP/JSON (`/v3/kv/*`, base64 keys and values, int64 as strings) with
aiohttp, which kybern already depends on, instead of adding a gRPC stack. etcd
3.4+ serves the gateway at `/v3/` (3.3 used `/v3beta/`).

URL: `etcd://HOST:PORT[,HOST:PORT...][/PREFIX][?cacert=&cert=&key=]`; `etcd+https://`
or `https://` for TLS. Keys are stored as the apiserver names them, under PREFIX
if one is given (so several clusters, or test cases, can share one etcd).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import orjson

from kybern.storage.interface import (
    KV,
    Compacted,
    Conflict,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    ListResult,
    StorageError,
)

log = logging.getLogger(__name__)

ERR_COMPACTED = "required revision has been compacted"
ERR_FUTURE = "required revision is a future revision"
REQUEST_TIMEOUT = 30.0


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


def _range_end(prefix: bytes) -> bytes:
    """etcd's GetPrefixRangeEnd: increment the last byte that is not 0xff."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"  # every key (etcd reads a range_end of "\0" as "to the end")


class EtcdStore:
    """The Store protocol on an etcd v3 cluster (see the module docstring)."""

    def __init__(self, url: str) -> None:
        u = urlparse(url)
        tls = u.scheme in ("https", "etcd+https")
        self.endpoints = [f"{'https' if tls else 'http'}://{hp}" for hp in u.netloc.split(",") if hp]
        if not self.endpoints:
            raise ValueError(f"datastore {url!r}: no etcd host given (etcd://HOST:PORT)")
        self.prefix = u.path.rstrip("/").encode()
        self._ssl: ssl.SSLContext | bool = True
        if tls:
            q = {k: v[-1] for k, v in parse_qs(u.query).items()}
            ctx = ssl.create_default_context(cafile=q.get("cacert") or None)
            if q.get("cert"):
                ctx.load_cert_chain(q["cert"], q.get("key") or None)
            self._ssl = ctx
        self._session: aiohttp.ClientSession | None = None
        self._current = 0  # index of the endpoint that last answered

    # -- transport ------------------------------------------------------------
    def _http(self) -> aiohttp.ClientSession:
        # made lazily: a ClientSession must be created inside the running loop
        if self._session is None or self._session.closed:
            # limit=0: every watcher holds a connection for as long as it watches
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl),
                json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the first endpoint that answers; map etcd's errors to ours."""
        last: Exception | None = None
        for i in range(len(self.endpoints)):
            ep = self.endpoints[(self._current + i) % len(self.endpoints)]
            try:
                async with self._http().post(ep + path, data=orjson.dumps(body),
                                             timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as resp:
                    out: dict[str, Any] = orjson.loads(await resp.read())
            except (TimeoutError, aiohttp.ClientConnectionError, orjson.JSONDecodeError) as e:
                last = e
                continue
            self._current = (self._current + i) % len(self.endpoints)
            if "error" in out:
                await self._raise(out, body.get("revision"))
            return out
        raise StorageError(f"etcd unreachable at {', '.join(self.endpoints)}: {last!r}")

    async def _raise(self, out: dict[str, Any], revision: Any) -> None:
        msg = str(out.get("error") or out.get("message"))
        if ERR_COMPACTED in msg:
            raise Compacted(int(revision or 0), await self._compact_revision())
        if ERR_FUTURE in msg:
            raise FutureRevision(msg)
        raise StorageError(f"etcd: {msg}")

    async def _compact_revision(self) -> int:
        """etcd has no call that returns it; a watch from revision 1 reports it."""
        try:
            stream = self._watch_stream({"key": _b64(b"\x00"), "start_revision": "1"})
            # never compacted: no answer but "created", hence the timeout
            async with asyncio.timeout(5), contextlib.aclosing(stream):
                async for res in stream:
                    if res.get("compact_revision") or res.get("canceled"):
                        return int(res.get("compact_revision") or 0)
                    if not res.get("created"):
                        break
        except (TimeoutError, StorageError, aiohttp.ClientError):
            pass
        return 0

    # -- keys -----------------------------------------------------------------
    def _key(self, key: str) -> bytes:
        return self.prefix + key.encode()

    def _kv(self, d: dict[str, Any]) -> KV:
        return KV(_unb64(d.get("key"))[len(self.prefix):].decode(), _unb64(d.get("value")),
                  int(d.get("create_revision", 0)), int(d.get("mod_revision", 0)))

    # -- reads ----------------------------------------------------------------
    async def get(self, key: str) -> tuple[KV | None, int]:
        out = await self._call("/v3/kv/range", {"key": _b64(self._key(key))})
        kvs = out.get("kvs") or []
        return (self._kv(kvs[0]) if kvs else None), int(out["header"]["revision"])

    async def mod_revision(self, key: str) -> int:
        out = await self._call("/v3/kv/range", {"key": _b64(self._key(key)), "keys_only": True})
        kvs = out.get("kvs") or []
        return int(kvs[0].get("mod_revision", 0)) if kvs else 0

    async def list(self, prefix: str, *, revision: int = 0, start: str = "",
                   limit: int = 0) -> ListResult:
        lo = max(prefix, start) if start else prefix
        body: dict[str, Any] = {"key": _b64(self._key(lo)), "range_end": _b64(_range_end(self._key(prefix)))}
        if revision:
            body["revision"] = str(revision)
        if limit:
            body["limit"] = str(limit)
        out = await self._call("/v3/kv/range", body)
        kvs = [self._kv(d) for d in out.get("kvs") or []]
        return ListResult(kvs, revision or int(out["header"]["revision"]), bool(out.get("more")))

    async def count(self, prefix: str) -> int:
        k = self._key(prefix)
        out = await self._call("/v3/kv/range", {"key": _b64(k), "range_end": _b64(_range_end(k)),
                                                "count_only": True})
        return int(out.get("count", 0))

    async def current_revision(self) -> int:
        out = await self._call("/v3/kv/range", {"key": _b64(b"\x00"), "count_only": True})
        return int(out["header"]["revision"])

    # -- writes ---------------------------------------------------------------
    async def _txn(self, key: bytes, compare: dict[str, Any], success: dict[str, Any]) -> dict[str, Any]:
        k = _b64(key)
        return await self._call("/v3/kv/txn", {
            "compare": [{"key": k, **compare}],
            "success": [success],
            "failure": [{"request_range": {"key": k}}],
        })

    def _current_of(self, out: dict[str, Any]) -> KV | None:
        """What a failed txn's range found (the key's value now), if anything."""
        kvs = out["responses"][0]["response_range"].get("kvs") or []
        return self._kv(kvs[0]) if kvs else None

    def _guard(self, expected_revision: int) -> dict[str, Any]:
        if expected_revision:
            return {"target": "MOD", "result": "EQUAL", "mod_revision": str(expected_revision)}
        return {"target": "CREATE", "result": "GREATER", "create_revision": "0"}  # the key exists

    async def create(self, key: str, value: bytes) -> int:
        k = self._key(key)
        out = await self._txn(k, {"target": "CREATE", "result": "EQUAL", "create_revision": "0"},
                              {"request_put": {"key": _b64(k), "value": _b64(value)}})
        if not out.get("succeeded"):
            raise KeyExists(key)
        return int(out["header"]["revision"])

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        k = self._key(key)
        out = await self._txn(k, self._guard(expected_revision),
                              {"request_put": {"key": _b64(k), "value": _b64(value)}})
        if not out.get("succeeded"):
            current = self._current_of(out)
            if current is None:
                raise KeyNotFound(key)
            raise Conflict(key, current)
        return int(out["header"]["revision"])

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KV]:
        k = self._key(key)
        out = await self._txn(k, self._guard(expected_revision),
                              {"request_delete_range": {"key": _b64(k), "prev_kv": True}})
        if not out.get("succeeded"):
            current = self._current_of(out)
            if current is None:
                raise KeyNotFound(key)
            raise Conflict(key, current)
        prev = (out["responses"][0]["response_delete_range"].get("prev_kvs") or [])
        if not prev:  # deleted between the compare and the delete cannot happen in one txn
            raise KeyNotFound(key)
        return int(out["header"]["revision"]), self._kv(prev[0])

    async def compact(self, revision: int) -> None:
        """Compact history at or below `revision`; one already compacted is a no-op
        (several apiservers' compactors may race, as upstream)."""
        try:
            await self._call("/v3/kv/compaction", {"revision": str(revision)})
        except Compacted:
            pass

    # -- watch ----------------------------------------------------------------
    async def _watch_stream(self, create: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The `result` messages of one watch stream (newline-delimited JSON)."""
        ep = self.endpoints[self._current]
        async with self._http().post(ep + "/v3/watch", data=orjson.dumps({"create_request": create}),
                                     timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as resp:
            buf = b""
            # read chunks, not lines: a batch of large objects can exceed aiohttp's line limit
            async for chunk in resp.content.iter_any():
                buf += chunk
                while (nl := buf.find(b"\n")) >= 0:
                    line, buf = buf[:nl], buf[nl + 1:]
                    if not line.strip():
                        continue
                    msg = orjson.loads(line)
                    if "error" in msg:
                        err = msg["error"]
                        raise StorageError(f"etcd watch: {err.get('message', err) if isinstance(err, dict) else err}")
                    yield msg.get("result") or {}

    def _event(self, d: dict[str, Any]) -> Event:
        kv = self._kv(d["kv"])
        prev = self._kv(d["prev_kv"]) if d.get("prev_kv") else None
        if d.get("type") == "DELETE":
            # etcd's DELETE kv is only key + revision; the contract wants the value it had
            value, create = (prev.value, prev.create_revision) if prev else (b"", 0)
            return Event("DELETE", KV(kv.key, value, create, kv.mod_revision), prev)
        created = kv.create_revision == kv.mod_revision
        return Event("PUT", kv, None if created else prev, created=created)

    async def watch(self, prefix: str, revision: int) -> AsyncIterator[Event]:
        k = self._key(prefix)
        create = {"key": _b64(k), "range_end": _b64(_range_end(k)), "start_revision": str(revision + 1),
                  "prev_kv": True}
        try:
            async for res in self._watch_stream(create):
                if res.get("compact_revision") and res.get("compact_revision") != "0":
                    raise Compacted(revision, int(res["compact_revision"]))
                if res.get("canceled"):
                    log.warning("etcd canceled the watch on %s: %s", prefix, res.get("cancel_reason", ""))
                    return
                for ev in res.get("events") or []:
                    yield self._event(ev)
        except (TimeoutError, aiohttp.ClientError) as e:
            # the stream broke (etcd restarted, connection lost): end the watch and
            # let the client re-watch from its last revision, as the SQLite backend
            # does with a watcher that fell behind
            log.warning("etcd watch on %s ended: %r", prefix, e)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
