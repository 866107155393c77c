"""``nova runtimes``: the languages this daemon can run, and why the others are missing."""

from __future__ import annotations

import typer

from nova.cli.state import state_of


def runtimes(ctx: typer.Context) -> None:
    """List runtimes and whether their toolchain is available."""
    from rich.text import Text

    from nova.cli.render import fmt_value

    state = state_of(ctx)
    items = state.client.collect("/runtimes")
    if state.json_output:
        state.out.json({"items": items, "next": None})
        return
    rows: list[list[str | Text]] = []
    for item in items:
        available = bool(item.get("available"))
        rows.append(
            [
                fmt_value(item.get("name")),
                Text("yes", style="green") if available else Text("no", style="red"),
                fmt_value(item.get("version")),
                fmt_value(item.get("extensions")),
                "" if available else fmt_value(item.get("reason")),
            ]
        )
    state.out.table(["RUNTIME", "AVAILABLE", "VERSION", "EXTENSIONS", "REASON"], rows)
