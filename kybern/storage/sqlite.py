"""SQLite backend: etcd's model as an append-only log table, after kine
(k3s-io/kine pkg/logstructured/sqllog and pkg/drivers/sqlite).

Every write INSERTs a row; its autoincrement id is the global revision. A delete
is a tombstone row. A UNIQUE index on (name, prev_revision) makes two writers
that start from the same revision collide, so guarded updates need no Python
lock. The compact revision lives in the table itself (`compact_rev_key`).

Durability: WAL with synchronous=NORMAL survives a killed process (the WAL is
written before a commit returns); it may lose the last commits on power loss,
like etcd with a lazy fsync. Set `sync=True` for FULL.

Group commit: the writes of one event-loop turn are queued and applied
together at its end, in one transaction (etcd batches its raft proposals the
same way); each is acknowledged, and its event published, only after that
COMMIT. The write lock is held just for that SQL, so several processes
sharing the file (apiserver workers) take turns without stalling each other.

Checkpoints: SQLite copies the WAL back into the database file (with an
fsync of each) every ~1,000 pages, inside whichever COMMIT crosses that mark:
5-60 ms during which that process's event loop answers nothing (a commit's
p99 went from ~0.1 ms to 15 ms in a micro-benchmark of 3-pod commits). The
store turns that off and runs a PASSIVE checkpoint from a thread of its own
every CHECKPOINT_INTERVAL instead (SQLite releases the GIL while it copies
and syncs); writers go on appending to the WAL meanwhile. Durability is the
same: a commit is in the WAL when it returns, as before.

Watch: local writes fan out at once to subscribers; a poller picks up rows other
processes sharing the file wrote. Each subscriber has a bounded queue; one that
falls behind is dropped (its watch ends) and the client re-lists.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any

from kybern.storage.interface import (
    KV,
    Compacted,
    Conflict,
    Event,
    KeyExists,
    KeyNotFound,
    ListResult,
    prefix_end,
)

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kine (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  created INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  create_revision INTEGER NOT NULL,
  prev_revision INTEGER NOT NULL,
  lease INTEGER NOT NULL DEFAULT 0,
  value BLOB,
  old_value BLOB
);
CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name, id);
CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision);
"""

COMPACT_KEY = "compact_rev_key"
_COLS = "id, name, created, deleted, create_revision, prev_revision, value, old_value"
# a row without old_value, for reads that need only the current value: SQLite
# then never reads old_value's overflow pages (an updated object's row holds
# both versions)
_VALUE_COLS = "id, name, created, deleted, create_revision, prev_revision, value"

# latest row per key in [start, end) at or below a revision
_LIST_SQL = f"""
SELECT {_VALUE_COLS} FROM kine WHERE id IN (
  SELECT MAX(id) FROM kine WHERE name >= ? AND name < ? AND id <= ? GROUP BY name
) AND deleted = 0 ORDER BY name LIMIT ?
"""

# the id of a key's latest row, tombstone or not: kine_name_id_index alone
# answers it, without reading the table's row (mod_revision)
_MOD_SQL = "SELECT id FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1"
# the latest row of a key and the current revision (at index 7)
_GET_SQL = f"SELECT {_VALUE_COLS}, (SELECT MAX(id) FROM kine) FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1"

SUBSCRIBER_QUEUE = 10_000
POLL_INTERVAL = 1.0
BUSY_TIMEOUT = 5.0
CHECKPOINT_INTERVAL = 0.1  # seconds between the checkpoint thread's WAL checkpoints
RESTART_FRAMES = 8192  # WAL frames (4 KiB pages) past which the WAL is started over (32 MiB)
RESTART_WAIT = 0.05  # how long a RESTART checkpoint waits for the write lock and for readers
RETRY_DELAY = 0.0005  # a group commit's next try when another process holds the write lock
# indexes kine has that no query here needs (kine_name_id_index serves lookups
# by name, the rowid ranges of revisions; compaction reads prev_revision as a
# value by rowid range); dropped from older files because every write pays for
# each index
_UNUSED_INDEXES = ("kine_name_index", "kine_id_deleted_index", "kine_prev_revision_index")


class _Write:
    """One queued write (`create`, `update` or `delete`) and the future its caller awaits."""

    __slots__ = ("expected", "fut", "key", "kind", "value")

    def __init__(self, kind: str, key: str, value: bytes | None, expected: int) -> None:
        self.kind, self.key, self.value, self.expected = kind, key, value, expected
        self.fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class _Subscriber:
    __slots__ = ("dropped", "prefix", "queue")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.dropped = False


class _Checkpointer(threading.Thread):
    """Checkpoints the WAL every CHECKPOINT_INTERVAL on its own connection.
    PASSIVE never waits for, nor blocks, readers and writers; but the WAL is
    written from its start again only by a writer that begins when every frame
    is checkpointed, which under a steady stream of writes never happens (the
    WAL grew by 40 MB a second in a write burst). So once it holds
    RESTART_FRAMES, a RESTART checkpoint follows a PASSIVE one that found
    nothing written meanwhile: it waits for readers of the WAL to finish and
    starts the WAL over. Past 4 x RESTART_FRAMES (a burst with no lull) it
    follows anyway, and then holds the write lock while it copies and syncs
    what was written since (~10-30 ms here; writers retry meanwhile, their
    event loops keep serving)."""

    def __init__(self, path: str) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.path = path
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as e:
            log.warning("sqlite checkpoint thread: %s", e)
            return
        try:
            # RESTART waits (busy handler) for the write lock and for readers of the WAL
            db.execute(f"PRAGMA busy_timeout={int(RESTART_WAIT * 1000)}")
            while not self.stopping.wait(CHECKPOINT_INTERVAL):
                try:
                    _, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    # cheap when nothing was written during the PASSIVE one (nothing to copy or sync)
                    if frames >= RESTART_FRAMES and (done == frames or frames >= 4 * RESTART_FRAMES):
                        db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                except sqlite3.Error as e:  # another process's checkpoint, a closing file: next time
                    log.debug("sqlite checkpoint: %s", e)
        finally:
            db.close()


class SQLiteStore:
    def __init__(self, path: str, *, sync: bool = False) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
        self.db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        self.db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread's job (above)
        self.db.executescript(SCHEMA)
        for index in _UNUSED_INDEXES:
            self.db.execute(f"DROP INDEX IF EXISTS {index}")
        # writes (group commits, compaction) go through a second connection that never
        # waits for the write lock (busy_timeout 0: a commit finding it taken retries
        # from the event loop), reads through the first, which waits as usual
        self.wdb = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.wdb.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
        self.wdb.execute("PRAGMA busy_timeout=0")
        self.wdb.execute("PRAGMA wal_autocheckpoint=0")
        self._subs: list[_Subscriber] = []
        self._last_seen = self._max_id()
        self._poller: asyncio.Task[None] | None = None
        self._queue: list[_Write] = []  # writes waiting for the next group commit
        self._flush_scheduled = False
        self._busy_since: float | None = None
        self._checkpointer: _Checkpointer | None = None  # started by the first write
        # how often rows other processes wrote are looked for (apiserver workers set it lower)
        self.poll_interval = POLL_INTERVAL

    # -- helpers ------------------------------------------------------------
    def _max_id(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM kine").fetchone()[0])

    def _compact_rev(self) -> int:
        row = self.db.execute(
            "SELECT prev_revision FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1", (COMPACT_KEY,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _latest(self, key: str) -> tuple[Any, ...] | None:
        """The key's latest row, without old_value (_VALUE_COLS), inside a write."""
        return self.wdb.execute(
            f"SELECT {_VALUE_COLS} FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1", (key,)
        ).fetchone()

    @staticmethod
    def _create_rev(row: tuple[Any, ...]) -> int:
        """A creating row stores create_revision 0 and means its own id (saves an
        UPDATE per create); older files hold the id itself, which reads the same."""
        return int(row[4]) or int(row[0])

    @classmethod
    def _kv(cls, row: tuple[Any, ...]) -> KV:
        return KV(row[1], bytes(row[6]) if row[6] is not None else b"", cls._create_rev(row), int(row[0]))

    def _try_begin(self) -> bool:
        """BEGIN IMMEDIATE on the write connection, without waiting: False if
        another connection holds the write lock."""
        try:
            self.wdb.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as e:
            if "locked" not in str(e):
                raise
            return False

    def _start_checkpointer(self) -> None:
        self._checkpointer = _Checkpointer(self.path)
        self._checkpointer.start()

    async def _submit(self, kind: str, key: str, value: bytes | None, expected: int) -> Any:
        w = _Write(kind, key, value, expected)
        if self._checkpointer is None:
            self._start_checkpointer()
        self._queue.append(w)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        # shielded: a cancelled request does not cancel a write others share a commit with
        return await asyncio.shield(w.fut)

    def _flush(self) -> None:
        """Apply every queued write in one transaction and COMMIT, all in this
        one call, so SQLite's write lock is held only for the SQL itself; then
        publish the events and answer the writers, in revision order."""
        self._flush_scheduled = False
        if not self._queue:
            return
        loop = asyncio.get_running_loop()
        try:
            began = self._try_begin()
        except sqlite3.Error as e:
            self._fail_all(e)
            return
        if not began:  # another process is committing: try again very soon
            now = loop.time()
            self._busy_since = self._busy_since or now
            if now - self._busy_since > BUSY_TIMEOUT:
                self._busy_since = None
                self._fail_all(sqlite3.OperationalError("database is locked"))
                return
            self._flush_scheduled = True
            loop.call_later(self._retry_delay(loop), self._flush)
            return
        self._busy_since = None
        writes, self._queue = self._queue, []
        rows: list[tuple[Any, ...]] = []
        results: list[Any] = []
        try:
            for w in writes:
                try:
                    row = self._apply(w)
                except (KeyExists, KeyNotFound, Conflict) as e:
                    results.append(e)
                    continue
                rows.append(row)
                results.append(row)
            self.wdb.execute("COMMIT")
        except sqlite3.Error as e:
            log.error("sqlite group commit of %d writes failed: %s", len(writes), e)
            if self.wdb.in_transaction:
                self.wdb.execute("ROLLBACK")
            for w in writes:
                w.fut.set_exception(e)
                w.fut.exception()  # retrieved: a cancelled caller may not look
            return
        for row in rows:
            self._publish_local(row[0], row)
        for w, res in zip(writes, results):
            if isinstance(res, Exception):
                w.fut.set_exception(res)
                w.fut.exception()
            elif w.kind == "delete":
                w.fut.set_result((res[0], KV(w.key, bytes(res[6]) if res[6] is not None else b"",
                                             int(res[4]), int(res[5]))))
            else:
                w.fut.set_result(res[0])

    @staticmethod
    def _retry_delay(loop: asyncio.AbstractEventLoop) -> float:
        """How soon a flush that found the write lock taken tries again: 0.5 ms,
        or 1 ms on uvloop, whose timers count whole milliseconds (it runs a
        0.5 ms call_later at once: a busy retry loop while the other process
        commits)."""
        return RETRY_DELAY if isinstance(loop, asyncio.BaseEventLoop) else 0.001

    def _fail_all(self, e: Exception) -> None:
        writes, self._queue = self._queue, []
        for w in writes:
            w.fut.set_exception(e)
            w.fut.exception()

    def _apply(self, w: _Write) -> tuple[Any, ...]:
        """One write inside the open transaction: the row it inserted, or the
        storage error a caller gets (etcd's compare failures)."""
        prev = self._latest(w.key)
        live = prev is not None and not prev[3]
        if w.kind == "create":
            if live:
                raise KeyExists(w.key)
            row = (w.key, 1, 0, 0, int(prev[0]) if prev is not None else 0, w.value, None)
        else:
            if not live:
                raise KeyNotFound(w.key)
            assert prev is not None
            if w.expected and int(prev[0]) != w.expected:
                raise Conflict(w.key, self._kv(prev))
            value = w.value if w.kind == "update" else prev[6]
            row = (w.key, 0, 1 if w.kind == "delete" else 0, self._create_rev(prev), int(prev[0]), value, prev[6])
        try:
            cur = self.wdb.execute(
                "INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value,"
                " old_value) VALUES (?, ?, ?, ?, ?, 0, ?, ?)", row)
        except sqlite3.IntegrityError:
            if w.kind == "create":
                raise KeyExists(w.key) from None
            raise Conflict(w.key, self._kv(self._latest(w.key) or prev)) from None
        # published from what was written once committed; no second read of the row
        return (int(cur.lastrowid or 0), *row)

    # -- reads --------------------------------------------------------------
    async def get(self, key: str) -> tuple[KV | None, int]:
        # the row and the current revision in one statement (one read transaction)
        row = self.db.execute(_GET_SQL, (key,)).fetchone()
        if row is None:
            return None, self._max_id()
        if row[3]:
            return None, int(row[7])
        return self._kv(row), int(row[7])

    async def mod_revision(self, key: str) -> int:
        # a tombstone's id is its deletion's revision, which no put of the key has;
        # compaction removes a tombstone together with the row it replaced
        row = self.db.execute(_MOD_SQL, (key,)).fetchone()
        return int(row[0]) if row is not None else 0

    async def list(self, prefix: str, *, revision: int = 0, start: str = "",
                   limit: int = 0) -> ListResult:
        current = self._max_id()
        if revision:
            compact = self._compact_rev()
            if revision < compact:
                raise Compacted(revision, compact)
            at = revision
        else:
            at = current
        lo = max(prefix, start) if start else prefix
        rows = self.db.execute(_LIST_SQL, (lo, prefix_end(prefix), at, (limit + 1) if limit else -1)).fetchall()
        more = bool(limit) and len(rows) > limit
        if more:
            rows = rows[:limit]
        return ListResult([self._kv(r) for r in rows], at, more)

    async def count(self, prefix: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM kine WHERE id IN (SELECT MAX(id) FROM kine WHERE name >= ? AND name < ?"
            " GROUP BY name) AND deleted = 0", (prefix, prefix_end(prefix))).fetchone()
        return int(row[0])

    async def current_revision(self) -> int:
        current = self._max_id()
        if current > self._last_seen:
            self._poll_once()  # rows another process wrote: publish them now, not at the next poll
        return current

    # -- writes -------------------------------------------------------------
    async def create(self, key: str, value: bytes) -> int:
        return int(await self._submit("create", key, value, 0))

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        return int(await self._submit("update", key, value, expected_revision))

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KV]:
        rev, prev = await self._submit("delete", key, None, expected_revision)
        return int(rev), prev

    # -- compaction -----------------------------------------------------------
    async def compact(self, revision: int) -> None:
        """Drop history at or below `revision` that no current key needs: rows
        replaced by a later row and tombstones (kine's compact query)."""
        current = self._compact_rev()
        if revision <= current:
            return
        if self._checkpointer is None:
            self._start_checkpointer()
        deadline = asyncio.get_running_loop().time() + BUSY_TIMEOUT
        while not self._try_begin():  # another process is writing; wait without blocking the loop
            if asyncio.get_running_loop().time() > deadline:
                raise sqlite3.OperationalError("database is locked")
            await asyncio.sleep(0.001)
        try:
            self.wdb.execute(
                "DELETE FROM kine WHERE id IN (SELECT prev_revision FROM kine WHERE name != ?"
                " AND prev_revision != 0 AND id <= ?)", (COMPACT_KEY, revision))
            self.wdb.execute("DELETE FROM kine WHERE deleted = 1 AND id <= ?", (revision,))
            prev = self.wdb.execute("SELECT id FROM kine WHERE name = ?", (COMPACT_KEY,)).fetchone()
            self.wdb.execute("DELETE FROM kine WHERE name = ?", (COMPACT_KEY,))
            # the bookkeeping row records the compact revision in prev_revision
            self.wdb.execute(
                "INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease)"
                " VALUES (?, 0, 0, 0, ?, 0)", (COMPACT_KEY, revision))
            self.wdb.execute("COMMIT")
        except Exception:
            self.wdb.execute("ROLLBACK")
            raise
        del prev
        self._last_seen = max(self._last_seen, self._max_id())

    # -- watch ----------------------------------------------------------------
    def _event(self, row: tuple[Any, ...]) -> Event:
        rid, name, created, deleted = int(row[0]), row[1], int(row[2]), int(row[3])
        value = bytes(row[6]) if row[6] is not None else b""
        old = bytes(row[7]) if row[7] is not None else None
        kv = KV(name, value, int(row[4]) or rid, rid)
        prev = KV(name, old, int(row[4]) or int(row[5]), int(row[5])) if old is not None else None
        return Event("DELETE" if deleted else "PUT", kv, prev, created=bool(created))

    def _publish_local(self, rev: int, row: tuple[Any, ...]) -> None:
        """Publish a row this connection just committed, after any rows other
        processes committed before it (read back; ours is published as written)."""
        if rev <= self._last_seen:
            return
        if rev > self._last_seen + 1:
            self._poll_once(below=rev)
        self._last_seen = rev
        if self._subs:
            self._fanout(self._event(row))

    def _poll_once(self, below: int = 0) -> None:
        """Publish the rows after the last seen one (those below `below`, if given)."""
        if below:
            rows = self.db.execute(f"SELECT {_COLS} FROM kine WHERE id > ? AND id < ? ORDER BY id",
                                   (self._last_seen, below)).fetchall()
        else:
            rows = self.db.execute(
                f"SELECT {_COLS} FROM kine WHERE id > ? ORDER BY id", (self._last_seen,)).fetchall()
        for row in rows:
            self._last_seen = int(row[0])
            if row[1] != COMPACT_KEY and self._subs:
                self._fanout(self._event(row))

    def _fanout(self, ev: Event) -> None:
        key = ev.kv.key
        for sub in self._subs:
            if sub.dropped or not key.startswith(sub.prefix):
                continue
            try:
                sub.queue.put_nowait(ev)
            except asyncio.QueueFull:
                sub.dropped = True
                log.warning("watcher on %s fell behind; dropping it", sub.prefix)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self._poll_once()
            except sqlite3.Error as e:
                log.warning("sqlite poll failed: %s", e)

    async def watch(self, prefix: str, revision: int) -> AsyncIterator[Event]:
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_loop())
        sub = _Subscriber(prefix)
        self._subs.append(sub)
        try:
            compact = self._compact_rev()
            if revision < compact:
                raise Compacted(revision, compact)
            # subscribe first, then catch up; drop what the catch-up already sent
            upto = self._last_seen
            rows = self.db.execute(
                f"SELECT {_COLS} FROM kine WHERE id > ? AND id <= ? AND name >= ? AND name < ? ORDER BY id",
                (revision, upto, prefix, prefix_end(prefix))).fetchall()
            for row in rows:
                yield self._event(row)
            while True:
                if sub.dropped and sub.queue.empty():
                    return
                ev = await sub.queue.get()
                if ev is None:
                    return
                if ev.kv.mod_revision <= upto:
                    continue
                yield ev
        finally:
            self._subs.remove(sub)

    async def close(self) -> None:
        if self._poller:
            self._poller.cancel()
        if self._checkpointer is not None:
            self._checkpointer.stopping.set()
            self._checkpointer.join()
        for sub in self._subs:
            sub.dropped = True
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass
        self.wdb.close()
        self.db.close()
