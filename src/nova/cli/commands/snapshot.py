"""``nova snapshot``: list, build and drop function snapshots (forked templates)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from nova.cli.state import state_of

app = typer.Typer(
    name="snapshot",
    help="Function snapshots: cold starts fork a template that imported the code once.",
    no_args_is_help=True,
)


@app.command("list")
def list_snapshots(ctx: typer.Context) -> None:
    """List snapshots (function templates, and pools of pre-started runtimes, whose FUNCTION
    column names the runtime): state, memory held, hits, misses and fallbacks."""
    from nova.cli.render import fmt_bytes, fmt_time, fmt_unit, fmt_value

    state = state_of(ctx)
    items = state.client.collect("/snapshots")
    if state.json_output:
        state.out.json({"items": items, "next": None})
        return
    if not items:
        state.out.note(
            "no snapshots; the first cold start of a Python function builds one, "
            "or run `nova snapshot create NAME`"
        )
        return
    state.out.table(
        [
            "ID",
            "KIND",
            "FUNCTION",
            "VERSION",
            "MEMORY",
            "STATE",
            "SIZE",
            "HITS",
            "MISSES",
            "FALLBACKS",
            "USED",
        ],
        (
            [
                fmt_value(item.get("id")),
                fmt_value(item.get("kind")),
                fmt_value(item.get("function") or item.get("detail")),
                fmt_value(item.get("version")),
                fmt_unit(item.get("memory_mb"), "MB"),
                fmt_value(item.get("state")),
                fmt_bytes(item.get("size_bytes")),
                fmt_value(item.get("hits")),
                fmt_value(item.get("misses")),
                fmt_value(item.get("fallbacks")),
                fmt_time(item.get("last_used_at")),
            ]
            for item in items
        ),
    )


@app.command("create")
def create_snapshot(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Function name.")],
    qualifier: Annotated[
        str | None, typer.Option("--qualifier", "-q", help="A version or alias (default $LATEST).")
    ] = None,
) -> None:
    """Build the function's snapshot now, so its next cold start forks it."""
    from nova.cli.client import function_path
    from nova.cli.render import fmt_bytes

    state = state_of(ctx)
    params = {"qualifier": qualifier} if qualifier else None
    info = state.client.call("POST", function_path(name) + "/snapshot", params=params)
    if state.json_output:
        state.out.json(info)
        return
    state.out.line(f"snapshot {info.get('id')} of {name} is {info.get('state')}")
    state.out.note(f"it holds {fmt_bytes(info.get('size_bytes'))}; see `nova snapshot list`")


@app.command("delete")
def delete_snapshot(
    ctx: typer.Context,
    snapshot_id: Annotated[str, typer.Argument(metavar="ID", help="From `nova snapshot list`.")],
) -> None:
    """Drop a snapshot; the function's next cold start starts normally and builds a new one."""
    state = state_of(ctx)
    state.client.send("DELETE", "/snapshots/" + quote(snapshot_id, safe=""))
    if state.json_output:
        state.out.json({"id": snapshot_id, "deleted": True})
        return
    state.out.line(f"deleted snapshot {snapshot_id}")
