"""``nova schedule``: run a function's event on a cron expression or an interval."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer

from nova.cli.errors import UsageProblem
from nova.cli.state import CliState, state_of

app = typer.Typer(
    name="schedule",
    help="Schedules: '@every 30s', '@hourly', '@daily' or cron fields, in a time zone.",
    no_args_is_help=True,
)

IdArg = Annotated[
    str, typer.Argument(metavar="ID", help="The schedule's id (`nova schedule list`).")
]


def _path(schedule_id: str) -> str:
    return "/schedules/" + quote(schedule_id, safe="")


@app.command("add")
def add(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(metavar="FUNCTION", help="name or name:qualifier")],
    expression: Annotated[
        str,
        typer.Argument(
            metavar="EXPRESSION", help="'@every 30s', '@hourly', '@daily' or '*/5 * * * *'"
        ),
    ],
    timezone: Annotated[
        str, typer.Option("--tz", help="IANA time zone the cron fields are read in.")
    ] = "UTC",
    payload: Annotated[
        str, typer.Option("--payload", "-p", metavar="JSON", help="The event's detail.")
    ] = "{}",
    catch_up: Annotated[
        str,
        typer.Option(
            "--catch-up", help="Ticks missed while no daemon ran: latest (once), none or all."
        ),
    ] = "latest",
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
) -> None:
    """Run FUNCTION on every tick of EXPRESSION, through the async queue (retries, DLQ)."""
    state = state_of(ctx)
    try:
        detail = json.loads(payload)
    except ValueError as exc:
        raise UsageProblem(f"--payload is not JSON: {exc}") from None
    body = {
        "function": function,
        "expression": expression,
        "timezone": timezone,
        "payload": detail,
        "catch_up": catch_up,
        "enabled": not paused,
    }
    schedule = state.client.call("POST", "/schedules", json_body=body)
    if state.json_output:
        state.out.json(schedule)
        return
    state.out.line(f"schedule {schedule['id']}: {function} {expression} ({timezone})")
    if schedule.get("next_run_at"):
        state.out.note(f"next run at {schedule['next_run_at']}")


@app.command("list")
def list_schedules(
    ctx: typer.Context,
    function: Annotated[
        str | None, typer.Option("--function", "-f", metavar="NAME", help="Only this function's.")
    ] = None,
) -> None:
    """Schedules with their next and last runs."""
    state = state_of(ctx)
    params = {"function": function} if function else None
    items: list[dict[str, Any]] = state.client.collect("/schedules", params)
    if state.json_output:
        state.out.json({"items": items, "next": None})
        return
    if not items:
        state.out.note("no schedules; add one with `nova schedule add FUNCTION '@every 1m'`")
        return
    from nova.cli.render import fmt_time

    rows = [
        (
            str(item["id"]),
            str(item["function"]) + (f":{item['qualifier']}" if item.get("qualifier") else ""),
            str(item["expression"]),
            str(item["timezone"]),
            "enabled" if item["enabled"] else "paused",
            fmt_time(item.get("next_run_at")),
            fmt_time(item.get("last_run_at")),
        )
        for item in items
    ]
    state.out.table(("ID", "FUNCTION", "EXPRESSION", "TZ", "STATE", "NEXT", "LAST"), rows)


@app.command("delete")
def delete(ctx: typer.Context, schedule_id: IdArg) -> None:
    """Delete a schedule (events it already queued still run)."""
    state = state_of(ctx)
    schedule = state.client.call("DELETE", _path(schedule_id))
    _done(state, schedule, f"deleted schedule {schedule['id']} ({schedule['function']})")


@app.command("pause")
def pause(ctx: typer.Context, schedule_id: IdArg) -> None:
    """Stop firing a schedule until it is resumed."""
    state = state_of(ctx)
    schedule = state.client.call("PATCH", _path(schedule_id), json_body={"enabled": False})
    _done(state, schedule, f"paused schedule {schedule['id']}; `nova schedule resume` restarts it")


@app.command("resume")
def resume(ctx: typer.Context, schedule_id: IdArg) -> None:
    """Fire a paused schedule again, from its next tick (paused ticks are not caught up)."""
    state = state_of(ctx)
    schedule = state.client.call("PATCH", _path(schedule_id), json_body={"enabled": True})
    _done(
        state, schedule, f"resumed schedule {schedule['id']}; next run at {schedule['next_run_at']}"
    )


def _done(state: CliState, schedule: dict[str, Any], text: str) -> None:
    if state.json_output:
        state.out.json(schedule)
    else:
        state.out.line(text)
