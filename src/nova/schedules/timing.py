"""When a schedule's ticks fall: ``@every 30s`` intervals, ``@hourly``-style shortcuts and
five-field cron expressions read in an IANA time zone.

Cron fields are evaluated by cronsim (maintained, no dependencies, handles daylight-saving
gaps and repeats); intervals are plain arithmetic from an anchor, any earlier tick::

    timing = parse("*/15 9-17 * * 1-5", "Europe/Paris")
    timing.next_after(now)   # the first tick strictly after now, in UTC
    timing.previous(now)     # the last tick strictly before now
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from nova.core.errors import RequestInvalid

MAX_COUNT = 10_000  # a week of every-minute cron ticks
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 366 * 86400
SHORTCUTS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EXAMPLES = "give e.g. '@every 30s', '@hourly', '@daily' or five cron fields like '*/5 * * * *'"


class Timing(Protocol):
    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment`` (aware), in UTC."""
        ...

    def previous(self, moment: datetime) -> datetime:
        """The last tick strictly before ``moment`` (aware), in UTC."""
        ...

    def count(self, first: datetime, last: datetime) -> int:
        """How many ticks fall from ``first`` (a tick) to ``last``, both included; at most
        ``MAX_COUNT`` for cron (counted one by one), exact for intervals."""
        ...


class Interval:
    """Ticks every ``step_s`` seconds from ``anchor`` (whole seconds)."""

    def __init__(self, step_s: int, anchor: datetime) -> None:
        self.step_s = step_s
        self._anchor = anchor.astimezone(UTC).replace(microsecond=0)

    def next_after(self, moment: datetime) -> datetime:
        steps = math.floor((moment - self._anchor).total_seconds() / self.step_s) + 1
        return self._anchor + timedelta(seconds=steps * self.step_s)

    def previous(self, moment: datetime) -> datetime:
        steps = math.ceil((moment - self._anchor).total_seconds() / self.step_s) - 1
        return self._anchor + timedelta(seconds=steps * self.step_s)

    def count(self, first: datetime, last: datetime) -> int:
        if last < first:
            return 0
        return math.floor((last - first).total_seconds() / self.step_s) + 1


class Cron:
    def __init__(self, fields: str, zone: ZoneInfo) -> None:
        self._fields = fields
        self._zone = zone
        CronSim(fields, datetime.now(zone))  # raises CronSimError for bad fields

    def next_after(self, moment: datetime) -> datetime:
        return next(CronSim(self._fields, moment.astimezone(self._zone))).astimezone(UTC)

    def previous(self, moment: datetime) -> datetime:
        start = moment.astimezone(self._zone)
        tick = next(CronSim(self._fields, start, reverse=True))
        if tick >= start:  # reverse iteration may yield the start itself when it is a tick
            tick = next(CronSim(self._fields, start - timedelta(seconds=1), reverse=True))
        return tick.astimezone(UTC)

    def count(self, first: datetime, last: datetime) -> int:
        if last < first:
            return 0
        ticks = CronSim(self._fields, first.astimezone(self._zone))
        counted = 1
        while counted < MAX_COUNT and next(ticks) <= last:
            counted += 1
        return counted


def parse(expression: str, timezone: str, anchor: datetime | None = None) -> Timing:
    """The timing of ``expression`` in ``timezone``; ``RequestInvalid`` naming the field when
    either is wrong. ``anchor`` is a tick of an interval (the time it was created, or any
    tick since); cron expressions ignore it."""
    zone = time_zone(timezone)
    text = " ".join(expression.split())
    if text.startswith("@every"):
        return Interval(interval_s(text[len("@every") :].strip()), anchor or datetime.now(UTC))
    fields = SHORTCUTS.get(text, text)
    if fields.startswith("@"):
        raise RequestInvalid(f"expression: {expression!r} is not a known shortcut; {_EXAMPLES}")
    if len(fields.split()) != 5:
        raise RequestInvalid(
            f"expression: {expression!r} has {len(fields.split())} fields, cron needs 5 "
            "(minute hour day-of-month month day-of-week); " + _EXAMPLES
        )
    try:
        return Cron(fields, zone)
    except CronSimError as exc:
        raise RequestInvalid(f"expression: {expression!r}: {exc}; {_EXAMPLES}") from None


def interval_s(text: str) -> int:
    """``30s``, ``5m``, ``1h30m``, ``2d`` as seconds, within the allowed range."""
    parts = _DURATION_PART.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise RequestInvalid(
            f"expression: '@every {text}' needs a duration like 30s, 5m, 1h30m or 1d"
        )
    seconds = sum(int(number) * _UNIT_S[unit] for number, unit in parts)
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise RequestInvalid(
            f"expression: '@every {text}' must be between {MIN_INTERVAL_S}s and 366d"
        )
    return seconds


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RequestInvalid(
            f"timezone: {name[:80]!r} is not an IANA time zone; give e.g. UTC or Europe/Paris"
        ) from None
