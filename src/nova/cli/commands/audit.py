"""``nova audit``: the audit log, newest first, with filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from nova.cli.durations import parse_duration_s
from nova.cli.state import state_of


def audit(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option(help="Only this key's entries (its name).")] = None,
    action: Annotated[
        str | None,
        typer.Option(help="An action (function.create) or a prefix ending in '.' (function.)."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only entries about this target.")] = None,
    outcome: Annotated[
        str | None, typer.Option(help="ok, denied (any failure), or an error code.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only the last 10m, 2h, 7d ...", metavar="DURATION")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many entries.")] = 50,
    environment: Annotated[
        str | None,
        typer.Option(
            "--environment",
            metavar="ORG/PROJECT/ENV",
            help="Only this environment's entries, or '*' for every one (default: --env's, "
            "else every one).",
        ),
    ] = None,
) -> None:
    """Who changed what, when, from where, and how it ended; refused requests too."""
    from nova.cli.render import fmt_time

    state = state_of(ctx)
    query: dict[str, str | int] = {"limit": limit}
    for name, value in (
        ("actor", actor),
        ("action", action),
        ("target", target),
        ("environment", environment),
    ):
        if value is not None:
            query[name] = value
    if outcome is not None:
        query["outcome"] = outcome
    if since is not None:
        start = datetime.now(UTC) - timedelta(seconds=parse_duration_s(since))
        query["since"] = start.isoformat()
    page = state.client.call("GET", "/audit", params=query)
    if state.json_output:
        state.out.json(page)
        return
    items = page.get("items", []) if isinstance(page, dict) else []
    if not items:
        state.out.note("no audit entries match")
        return
    state.out.table(
        ["AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "FROM", "ENVIRONMENT"],
        (
            [
                fmt_time(item.get("at")),
                str(item.get("actor", {}).get("name")),
                str(item.get("action")),
                str(item.get("target")),
                str(item.get("outcome")),
                str(item.get("source_ip")),
                str(item.get("environment")),
            ]
            for item in items
        ),
    )
