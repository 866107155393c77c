"""Schedule timing: intervals from an anchor, shortcuts, cron fields in a time zone across a
daylight-saving change, and the refusals naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nova.core.errors import RequestInvalid
from nova.schedules.timing import interval_s, parse

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_every_counts_from_its_anchor() -> None:
    timing = parse("@every 30s", "UTC", T0)
    assert timing.next_after(T0) == T0 + timedelta(seconds=30)
    assert timing.next_after(T0 + timedelta(seconds=45)) == T0 + timedelta(seconds=60)
    assert timing.previous(T0 + timedelta(seconds=60)) == T0 + timedelta(seconds=30)
    assert timing.previous(T0 + timedelta(seconds=61)) == T0 + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1), ("5m", 300), ("1h30m", 5400), ("2d", 172800)]
)
def test_interval_durations(text: str, seconds: int) -> None:
    assert interval_s(text) == seconds


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("@hourly", datetime(2026, 1, 1, 1, tzinfo=UTC)),
        ("@daily", datetime(2026, 1, 2, tzinfo=UTC)),
        ("@weekly", datetime(2026, 1, 4, tzinfo=UTC)),  # the next Sunday
        ("@monthly", datetime(2026, 2, 1, tzinfo=UTC)),
        ("*/15 * * * *", datetime(2026, 1, 1, 0, 15, tzinfo=UTC)),
    ],
)
def test_shortcuts_and_cron_fields(expression: str, expected: datetime) -> None:
    assert parse(expression, "UTC").next_after(T0) == expected


def test_cron_fields_are_read_in_the_time_zone_across_dst() -> None:
    timing = parse("30 9 * * *", "Europe/Paris")
    # Winter: 09:30 Paris is 08:30 UTC; after the switch on 29 March it is 07:30 UTC.
    assert timing.next_after(datetime(2026, 3, 28, tzinfo=UTC)) == datetime(
        2026, 3, 28, 8, 30, tzinfo=UTC
    )
    assert timing.next_after(datetime(2026, 3, 29, tzinfo=UTC)) == datetime(
        2026, 3, 29, 7, 30, tzinfo=UTC
    )
    assert timing.previous(datetime(2026, 3, 29, 7, 30, tzinfo=UTC)) == datetime(
        2026, 3, 28, 8, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "timezone", "field"),
    [
        ("@every", "UTC", "expression"),
        ("@every 0s", "UTC", "expression"),
        ("@every 10x", "UTC", "expression"),
        ("@sometimes", "UTC", "expression"),
        ("* * * *", "UTC", "expression"),
        ("61 * * * *", "UTC", "expression"),
        ("@hourly", "Mars/Olympus", "timezone"),
    ],
)
def test_bad_input_names_the_field(expression: str, timezone: str, field: str) -> None:
    with pytest.raises(RequestInvalid, match=f"^{field}:"):
        parse(expression, timezone)
