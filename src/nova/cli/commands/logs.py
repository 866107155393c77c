"""``nova logs``: recent invocations of a function, optionally followed as they happen."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nova.cli.errors import BadResponse
from nova.cli.state import CliState, state_of

if TYPE_CHECKING:
    from rich.text import Text


def logs(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(metavar="[NAME]", help="Function name; without it, every function's."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="How many recent entries.")
    ] = 20,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Then stream new entries as they come, until Ctrl-C."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also show where a cold or snapshot start's time went (sandbox, code, runtime, "
            "init, execution).",
        ),
    ] = False,
    outcome: Annotated[
        Outcome | None,
        typer.Option("--outcome", help="With --follow: only success, error (any) or timeout."),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="With --follow: only this version.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="With --follow: start with the entries of the last 10m, 2h, ..."
        ),
    ] = None,
) -> None:
    """Show recent invocations of a function (or of all), oldest first.

    With --json: the API's list, newest first.

    With --follow, new invocations are streamed as the daemon stores them (each entry as one
    JSON line with --json); --outcome, --version and --since filter the stream, which then
    starts with the matching entries since --since rather than the recent ones.
    """
    from nova.cli.client import function_path

    state = state_of(ctx)
    filtered = outcome is not None or version is not None or since is not None
    if filtered and not follow:
        raise typer.BadParameter("--outcome, --version and --since go with --follow")
    query = _stream_query(name, outcome, version, since)
    items: list[dict[str, Any]] = []
    if not filtered:
        path = function_path(name, "logs") if name else "/invocations"
        page = state.client.call("GET", path, params={"limit": limit})
        items = _items(page, path)
        if not follow:
            if state.json_output:
                state.out.json(page)
            elif not items:
                state.out.note(f"no invocations of {name} yet" if name else "no invocations yet")
            else:
                _emit(state, reversed(items), name is None, verbose)
            return
    _emit(state, reversed(items), name is None, verbose)
    following = f"invocations of {name}" if name else "every invocation"

    def opened() -> None:
        state.out.note(f"following {following} (Ctrl-C to stop)")

    try:
        for data in state.client.events("/invocations/stream", query, opened):
            _emit(state, [_entry(data)], name is None, verbose)
    except KeyboardInterrupt:
        return  # Ctrl-C is how --follow ends
    state.out.note("the daemon ended the stream (it is stopping)")


class Outcome(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"


def _stream_query(
    name: str | None, outcome: Outcome | None, version: str | None, since: str | None
) -> dict[str, str]:
    from nova.cli.durations import parse_duration_s

    query = {"function": name, "outcome": outcome.value if outcome else None, "version": version}
    if since is not None:
        start = datetime.now(UTC) - timedelta(seconds=parse_duration_s(since))
        query["since"] = start.isoformat()
    return {key: value for key, value in query.items() if value is not None}


def _entry(data: str) -> dict[str, Any]:
    try:
        entry = json.loads(data)
    except ValueError as exc:
        raise BadResponse(
            f"GET /invocations/stream sent an event that is not JSON: {exc}"
        ) from None
    if not isinstance(entry, dict):
        raise BadResponse("GET /invocations/stream sent an event that is not an invocation")
    return entry


def _items(page: Any, path: str) -> list[dict[str, Any]]:
    items = page.get("items") if isinstance(page, dict) else None
    if not isinstance(items, list):
        raise BadResponse(f"GET {path} did not return an {{items, next}} list")
    return [item for item in items if isinstance(item, dict)]


def _emit(
    state: CliState, entries: Iterable[dict[str, Any]], show_function: bool, verbose: bool
) -> None:
    for entry in entries:
        if state.json_output:
            state.out.json(entry, indent=None)
        else:
            for line, style in format_entry(entry, show_function, verbose):
                state.out.console.print(line, style=style, markup=False, soft_wrap=True)


def format_entry(
    entry: dict[str, Any], show_function: bool = False, verbose: bool = False
) -> list[tuple[str | Text, str]]:
    """One invocation as (line, style) pairs: a summary line, with ``verbose`` the phases of a
    non-warm start, then its stdout/stderr."""
    from nova.cli.render import fmt_ms, fmt_time

    start = entry.get("start") or ("cold" if entry.get("cold_start") else "warm")
    where = f"{entry.get('function_name')}  " if show_function else ""
    head = f"{fmt_time(entry.get('created_at'))}  {where}{entry.get('id')}  "
    head += f"handler {fmt_ms(entry.get('duration_ms'))} / total {fmt_ms(entry.get('total_ms'))}  "
    head += f"{start}  "
    if entry.get("success", not entry.get("error_type")):
        lines: list[tuple[str | Text, str]] = [(head + "ok", "")]
    else:
        error = entry.get("error_type") or "error"
        if entry.get("error_message"):
            error = f"{error}: {entry['error_message']}"
        lines = [(head + error, "red")]
    if verbose and start not in ("warm", "prewarmed"):
        lines.append((start_line(entry), "cyan"))
    for stream, style in (("stdout", "dim"), ("stderr", "yellow")):
        text = entry.get(stream)
        if isinstance(text, str) and text:
            prefix = "  out | " if stream == "stdout" else "  err | "
            lines.extend((prefix + line, style) for line in text.rstrip("\n").splitlines())
    return lines


START_PHASES = (
    ("sandbox", "sandbox_ms"),
    ("code", "code_ms"),
    ("runtime", "runtime_ms"),
    ("init", "init_ms"),
    ("execution", "duration_ms"),
)


def start_line(entry: dict[str, Any]) -> str:
    """A non-warm start's phases as measured, and what the total holds beyond them (the
    request's dispatch and queueing)."""
    from nova.cli.render import fmt_ms

    parts, measured = [], 0.0
    for label, key in START_PHASES:
        value = entry.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label} {fmt_ms(value)}")
            measured += value
    total = entry.get("total_ms")
    if isinstance(total, int | float):
        parts.append(f"other {fmt_ms(max(0.0, total - measured))}")
    return "  start | " + " · ".join(parts)
