"""``nova vm-snapshot``: the microvm backend's VM snapshots (list, evict)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from nova.cli.errors import BadResponse
from nova.cli.state import state_of

app = typer.Typer(
    name="vm-snapshot",
    help="VM snapshots microvm instances are restored from.",
    no_args_is_help=True,
)


@app.command("list")
def list_snapshots(ctx: typer.Context) -> None:
    """List the saved VM snapshots: one per function version, memory size and runtime image."""
    from nova.cli.render import fmt_bytes, fmt_time, fmt_value

    state = state_of(ctx)
    body = state.client.call("GET", "/vm-snapshots")
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise BadResponse("GET /vm-snapshots did not return a list")
    if state.json_output:
        state.out.json(body)
        return
    items: list[dict[str, Any]] = body["items"]
    if not items:
        state.out.line("no VM snapshots (one is saved after a microvm instance initialises)")
        return
    state.out.table(
        ["FUNCTION", "KEY", "ON DISK", "SAVED"],
        (
            [
                fmt_value(item.get("function")),
                fmt_value(item.get("key")),
                fmt_bytes(item.get("disk_bytes")),
                fmt_time(item.get("created_at")),
            ]
            for item in items
        ),
    )


@app.command("evict")
def evict(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(metavar="FUNCTION", help="Function name.")],
) -> None:
    """Delete a function's VM snapshots; its next start boots and saves a new one."""
    from nova.cli.render import fmt_bytes

    state = state_of(ctx)
    body = state.client.call("DELETE", "/vm-snapshots/" + quote(function, safe=""))
    if not isinstance(body, dict) or not isinstance(body.get("removed"), list):
        raise BadResponse("DELETE /vm-snapshots did not say what it removed")
    if state.json_output:
        state.out.json(body)
        return
    count = len(body["removed"])
    if count == 0:
        state.out.line(f"{function} has no VM snapshot (`nova vm-snapshot list` shows them)")
        return
    state.out.line(
        f"evicted {count} VM snapshot(s) of {function}, {fmt_bytes(body.get('freed_bytes'))} freed"
    )
