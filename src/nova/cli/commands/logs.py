"""``nova logs``: recent invocations of a function, optionally followed as they happen."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nova.cli.errors import BadResponse
from nova.cli.state import CliState, state_of

if TYPE_CHECKING:
    from rich.text import Text

POLL_INTERVAL_S = 1.0
FOLLOW_WINDOW = 100  # entries fetched per poll; more new ones than this per second are skipped


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
        bool, typer.Option("--follow", "-f", help="Keep polling for new entries until Ctrl-C.")
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
) -> None:
    """Show recent invocations of a function (or of all), oldest first.

    With --json: the API's list, newest first.

    With --follow --json, each entry is printed as one JSON line.
    """
    from nova.cli.client import function_path

    state = state_of(ctx)
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
    try:
        _follow(state, path, items, name is None, verbose)
    except KeyboardInterrupt:
        return  # Ctrl-C is how --follow ends


def _follow(
    state: CliState, path: str, items: list[dict[str, Any]], show_function: bool, verbose: bool
) -> None:
    _emit(state, reversed(items), show_function, verbose)
    seen = {item.get("id") for item in items}
    while True:
        state.ports.sleep(POLL_INTERVAL_S)
        window = _items(state.client.call("GET", path, params={"limit": FOLLOW_WINDOW}), path)
        fresh: list[dict[str, Any]] = []
        for item in window:  # newest first: new entries are the run before a known one
            if item.get("id") in seen:
                break
            fresh.append(item)
        _emit(state, reversed(fresh), show_function, verbose)
        if window:
            seen = {item.get("id") for item in window}


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
