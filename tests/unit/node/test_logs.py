"""CRI log files: writing records and reading them back with kubectl's options."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kybern.node.logs import (
    MAX_LINE,
    LogOptions,
    LogWriter,
    parse_record,
    parse_rfc3339,
    stream_log,
)


async def _read(path: Path, **kw: object) -> bytes:
    return b"".join([c async for c in stream_log(str(path), LogOptions(**kw))])  # type: ignore[arg-type]


def test_records_are_in_cri_format(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "c" / "0.log")
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\n")
    w.write("stdout", b"tail-without-newline")
    w.close()
    recs = [parse_record(x) for x in (tmp_path / "c" / "0.log").read_bytes().splitlines()]
    assert [(r.stream, r.full, r.content) for r in recs if r] == [
        ("stdout", True, b"one"), ("stderr", True, b"err"), ("stdout", True, b"two"),
        ("stdout", True, b"tail-without-newline")]


def test_long_lines_are_split_into_partial_records(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "0.log")
    w.write("stdout", b"x" * (MAX_LINE + 10) + b"\n")
    w.close()
    recs = [parse_record(x) for x in (tmp_path / "0.log").read_bytes().splitlines()]
    assert [(r.full, len(r.content)) for r in recs if r] == [(False, MAX_LINE), (True, 10)]


async def test_reading_joins_partials_and_applies_options(tmp_path: Path) -> None:
    p = tmp_path / "0.log"
    p.write_bytes(b"2024-01-01T00:00:00.000000001Z stdout F a\n"
                  b"2024-01-01T00:00:01.5Z stderr P b1\n"
                  b"2024-01-01T00:00:01.6Z stderr F b2\n"
                  b"2024-01-01T00:00:02.000000000Z stdout F c\n")
    assert await _read(p) == b"a\nb1b2\nc\n"
    assert await _read(p, tail_lines=1) == b"c\n"
    assert await _read(p, tail_lines=0) == b""
    assert await _read(p, limit_bytes=3) == b"a\nb"
    assert await _read(p, since_time=parse_rfc3339("2024-01-01T00:00:02Z")) == b"c\n"
    assert (await _read(p, timestamps=True)).splitlines()[0] == b"2024-01-01T00:00:00.000000001Z a"


async def test_follow_stops_when_the_container_has_finished(tmp_path: Path) -> None:
    p = tmp_path / "0.log"
    w = LogWriter(p)
    w.write("stdout", b"first\n")
    done = False
    got: list[bytes] = []

    async def follow() -> None:
        async for chunk in stream_log(str(p), LogOptions(follow=True), lambda: done, poll_interval=0.01):
            got.append(chunk)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    w.write("stdout", b"second\n")
    await asyncio.sleep(0.05)
    w.close()
    done = True
    await asyncio.wait_for(task, 2)
    assert b"".join(got) == b"first\nsecond\n"


def test_rfc3339_parsing_keeps_fractions() -> None:
    t = parse_rfc3339("2024-01-01T00:00:00.25Z")
    assert abs(t - (parse_rfc3339("2024-01-01T00:00:00Z") + 0.25)) < 1e-6
    assert abs(parse_rfc3339(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())) - time.time()) < 2
