"""Container logs in the CRI log format: how they are written and read back.

Each line of a log file is one record, exactly as containerd writes them:

    2016-10-06T00:17:09.669794202Z stdout F hello world
    2016-10-06T00:17:09.669794202Z stderr P first 16K of a very long line
                                          ^ F = full line, P = partial

Keeping the upstream format means the files can be read by the same tools
(fluent-bit, promtail) and `kubectl logs` options (tailLines, sinceSeconds,
timestamps, limitBytes, follow) mean what they mean upstream: tailLines counts
records, timestamps prefixes each record with its RFC 3339 time.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

MAX_LINE = 16 * 1024  # containerd splits longer lines into P records of this size


def rfc3339nano(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    base = _dt.datetime.fromtimestamp(secs, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def parse_rfc3339(ts: str) -> float:
    """Seconds since the epoch of an RFC 3339 time with up to nanosecond digits."""
    ts = ts.strip()
    if ts.endswith("Z"):
        ts = ts[:-1] + "+00:00"
    frac = 0.0
    if "." in ts:
        head, rest = ts.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac = float(f"0.{digits}") if digits else 0.0
        ts = head + rest
    return _dt.datetime.fromisoformat(ts).timestamp() + frac


class LogWriter:
    """Appends one container's stdout/stderr to its log file. Partial output is
    kept per stream until a newline arrives (or the stream closes), so records
    from the two streams never interleave mid-line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._f = open(self.path, "ab", buffering=0)  # noqa: SIM115 -- open for the container's life
        self._pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._pending[stream] + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl], buf[nl + 1:]
            while len(line) > MAX_LINE:
                self._emit(stream, line[:MAX_LINE], full=False)
                line = line[MAX_LINE:]
            self._emit(stream, line, full=True)
        while len(buf) >= MAX_LINE:
            self._emit(stream, buf[:MAX_LINE], full=False)
            buf = buf[MAX_LINE:]
        self._pending[stream] = buf

    def close_stream(self, stream: str) -> None:
        """The stream ended: a last line without a newline is still a full line."""
        if self._pending[stream]:
            self._emit(stream, self._pending[stream], full=True)
            self._pending[stream] = b""

    def close(self) -> None:
        for s in ("stdout", "stderr"):
            self.close_stream(s)
        self._f.close()

    def _emit(self, stream: str, content: bytes, *, full: bool) -> None:
        if content.endswith(b"\r"):
            content = content[:-1]
        tag = b"F" if full else b"P"
        self._f.write(rfc3339nano().encode() + b" " + stream.encode() + b" " + tag + b" "
                      + content + b"\n")


@dataclass
class Record:
    timestamp: str
    time: float
    stream: str
    full: bool
    content: bytes

    def render(self, timestamps: bool) -> bytes:
        out = self.content + (b"\n" if self.full else b"")
        return (self.timestamp.encode() + b" " + out) if timestamps else out


def parse_record(line: bytes) -> Record | None:
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    ts = parts[0].decode(errors="replace")
    try:
        t = parse_rfc3339(ts)
    except ValueError:
        return None
    content = parts[3] if len(parts) > 3 else b""
    return Record(ts, t, parts[1].decode(errors="replace"), parts[2] != b"P", content)


@dataclass
class LogOptions:
    tail_lines: int | None = None
    since_time: float | None = None  # epoch seconds (from sinceSeconds or sinceTime)
    timestamps: bool = False
    limit_bytes: int | None = None
    follow: bool = False


async def stream_log(path: str, opts: LogOptions,
                     finished: Callable[[], bool] = lambda: True,
                     poll_interval: float = 0.1) -> AsyncIterator[bytes]:
    """Yield the rendered log of one container. With follow, keep yielding new
    records until `finished()` says the container has exited and the file holds
    nothing more (as the kubelet stops following when the container stops)."""
    sent = 0

    def limit(chunk: bytes) -> tuple[bytes, bool]:
        nonlocal sent
        if opts.limit_bytes is None:
            return chunk, False
        room = opts.limit_bytes - sent
        if len(chunk) >= room:
            sent = opts.limit_bytes
            return chunk[:room], True
        sent += len(chunk)
        return chunk, False

    def select(lines: list[bytes]) -> list[Record]:
        recs = [r for r in (parse_record(x) for x in lines) if r is not None]
        if opts.since_time is not None:
            recs = [r for r in recs if r.time >= opts.since_time]
        return recs

    try:
        f = open(path, "rb")  # noqa: SIM115, ASYNC230 -- a local file; closed below
    except FileNotFoundError:
        return
    with f:
        data = f.read()
        complete_to = data.rfind(b"\n") + 1
        recs = select(data[:complete_to].splitlines())
        if opts.tail_lines is not None:
            recs = recs[-opts.tail_lines:] if opts.tail_lines > 0 else []
        out = b"".join(r.render(opts.timestamps) for r in recs)
        if out:
            out, done = limit(out)
            yield out
            if done:
                return
        if not opts.follow:
            return
        f.seek(complete_to)
        buf = b""
        while True:
            # read `finished` before reading the file: any output written before
            # the exit is then guaranteed to be in this read
            was_finished = finished()
            chunk = f.read()
            if chunk:
                buf += chunk
                cut = buf.rfind(b"\n") + 1
                if cut:
                    out = b"".join(r.render(opts.timestamps) for r in select(buf[:cut].splitlines()))
                    buf = buf[cut:]
                    if out:
                        out, done = limit(out)
                        yield out
                        if done:
                            return
                continue
            if was_finished:
                return
            await asyncio.sleep(poll_interval)
