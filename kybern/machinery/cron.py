"""When does a cron schedule fire? The standard 5-field cron language as
CronJob validation and the CronJob controller read it (upstream uses robfig/cron's ParseStandard):

    minute hour day-of-month month day-of-week      e.g. "*/15 9-17 * * MON-FRI"

Fields take `*`, `?` (day fields), numbers, names (JAN-DEC, SUN-SAT), ranges
`a-b`, steps `*/n` or `a-b/n` or `a/n`, and comma lists. Descriptors `@yearly`
(`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly` and
`@every <duration>` are accepted. As in Vixie cron and robfig, when both
day-of-month and day-of-week are restricted a day matches either; when one is
`*`/`?` only the other counts.

Times are computed on the wall clock of a zoneinfo time zone (CronJob
`spec.timeZone`; the controller's local zone when unset): a wall time skipped by
a daylight-saving jump never fires, a repeated one fires once.

No dependency: croniter would do, but its future is uncertain and this file is
the whole of what we need.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTHS = {m: i + 1 for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_BOUNDS = [(0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTHS), (0, 6, _DAYS)]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class CronError(ValueError):
    """An unparseable schedule; the message reads as robfig/cron's."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    dom: frozenset[int]
    months: frozenset[int]
    dow: frozenset[int]
    dom_star: bool
    dow_star: bool
    every: float = 0.0  # "@every" interval in seconds (then the fields are unused)

    def _day_matches(self, d: _dt.date) -> bool:
        dom_ok = d.day in self.dom
        dow_ok = (d.isoweekday() % 7) in self.dow
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def next(self, after: _dt.datetime, tz: _dt.tzinfo) -> _dt.datetime | None:
        """The first firing strictly after `after` (aware), as an aware UTC time;
        None if there is none within five years (e.g. "0 0 30 2 *")."""
        if self.every:
            step = max(1.0, float(int(self.every)))
            return (after + _dt.timedelta(seconds=step)).replace(microsecond=0)
        local = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
        t = local + _dt.timedelta(minutes=1)
        limit = t + _dt.timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + _dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t.date()):
                t = t.replace(hour=0, minute=0) + _dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + _dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += _dt.timedelta(minutes=1)
                continue
            aware = t.replace(tzinfo=tz)
            back = aware.astimezone(_dt.UTC).astimezone(tz).replace(tzinfo=None)
            if back == t:  # exists on this day's clock (not inside a DST gap)
                out = aware.astimezone(_dt.UTC)
                if out > after:
                    return out
            t += _dt.timedelta(minutes=1)
        return None


def _parse_field(text: str, index: int) -> tuple[frozenset[int], bool]:
    lo, hi, names = _BOUNDS[index]
    values: set[int] = set()
    star = text.startswith(("*", "?"))
    for part in text.split(","):
        rng, _, step_s = part.partition("/")
        step = 1
        if _:
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"failed to parse int from {step_s}: strconv.Atoi: parsing "
                                f"\"{step_s}\": invalid syntax" if not step_s.isdigit()
                                else f"step of range should be a positive number: {part}")
            step = int(step_s)
        if rng in ("*", "?"):
            start, end = lo, hi
        else:
            a, dash, b = rng.partition("-")
            start = _number(a, names)
            end = _number(b, names) if dash else (hi if _ else start)
        if start < lo:
            raise CronError(f"beginning of range ({start}) below minimum ({lo}): {part}")
        if end > hi:
            raise CronError(f"end of range ({end}) above maximum ({hi}): {part}")
        if start > end:
            raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {part}")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def _number(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": invalid syntax")
    return int(text)


def _parse_duration(text: str) -> float:
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise CronError(f"failed to parse duration @every {text}: time: invalid duration \"{text}\"")
    return total


def parse(spec: str) -> Schedule:
    """Parse a schedule or raise CronError."""
    text = spec.strip()
    if not text:
        raise CronError("empty spec string")
    if text.startswith(("TZ=", "CRON_TZ=")):
        # robfig accepts a zone prefix; CronJob validation refuses it separately
        head, _, text = text.partition(" ")
        zone(head.split("=", 1)[1])
        text = text.strip()
    if text.startswith("@every "):
        return Schedule(frozenset(), frozenset(), frozenset(), frozenset(), frozenset(), True, True,
                        every=_parse_duration(text[len("@every "):].strip()))
    if text.startswith("@"):
        if text not in _DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {text}")
        text = _DESCRIPTORS[text]
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    parsed = [_parse_field(f, i) for i, f in enumerate(fields)]
    return Schedule(parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], parsed[4][0],
                    dom_star=parsed[2][1], dow_star=parsed[4][1])


def zone(name: str | None) -> _dt.tzinfo:
    """The zone for spec.timeZone (None: this process's local zone, as upstream's
    controller uses its own)."""
    if not name:
        local = _dt.datetime.now().astimezone().tzinfo
        return local or _dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise CronError(f"unknown time zone {name}") from e


def most_recent(sched: Schedule, tz: _dt.tzinfo, earliest: _dt.datetime,
                now: _dt.datetime) -> tuple[_dt.datetime | None, int]:
    """(the latest firing in (earliest, now], how many firings that interval holds),
    counting at most 101 as upstream's mostRecentScheduleTime does (more than 100
    missed starts is reported, not replayed). A schedule that never fires
    ("59 23 31 2 *") raises CronError with upstream's message: its cron library
    answers the zero time twice, whose difference is below a second."""
    t = sched.next(earliest, tz)
    if t is None:
        raise CronError("time difference between two schedules is less than 1 second")
    if t > now:
        return None, 0
    last, count = t, 1
    while count <= 100:
        n = sched.next(last, tz)
        if n is None or n > now:
            return last, count
        last, count = n, count + 1
    # too many: jump to the last firing before now without counting each one
    probe = now - _dt.timedelta(days=1)
    latest = last
    while True:
        n = sched.next(max(probe, latest), tz)
        if n is None or n > now:
            return latest, count
        latest = n
        probe = n
