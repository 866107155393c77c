"""Durations on the command line: ``90s``, ``30m``, ``24h``, ``30d`` or plain seconds."""

from __future__ import annotations

import re

import typer

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> int:
    match = _DURATION.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration: give e.g. 30m, 1h or 24h")
    return int(match.group(1)) * _UNIT_S[match.group(2)]
