"""``nova runtimes``: the languages this daemon can run and the sandbox backends this host
supports, with why the others are missing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from nova.cli.errors import BadResponse
from nova.cli.state import state_of

if TYPE_CHECKING:
    from rich.text import Text


def runtimes(ctx: typer.Context) -> None:
    """List runtimes and whether their toolchain is available, then the sandbox backends this
    host supports (the default marked) and why the others are unavailable."""
    from nova.cli.render import fmt_value

    state = state_of(ctx)
    body = state.client.call("GET", "/runtimes")
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise BadResponse("GET /runtimes did not return a list of runtimes")
    if state.json_output:
        state.out.json(body)
        return
    rows: list[list[str | Text]] = []
    for item in body["items"]:
        available = bool(item.get("available"))
        rows.append(
            [
                fmt_value(item.get("name")),
                _yes_no(available),
                fmt_value(item.get("version")),
                fmt_value(item.get("extensions")),
                "" if available else fmt_value(item.get("reason")),
            ]
        )
    state.out.table(["RUNTIME", "AVAILABLE", "VERSION", "EXTENSIONS", "REASON"], rows)
    backends = body.get("backends")
    if isinstance(backends, list) and backends:
        default = body.get("backend")
        state.out.table(
            ["BACKEND", "AVAILABLE", "DEFAULT", "REASON"],
            (
                [
                    fmt_value(backend.get("name")),
                    _yes_no(bool(backend.get("available"))),
                    "yes" if backend.get("name") == default else "",
                    fmt_value(backend.get("reason")),
                ]
                for backend in backends
            ),
        )


def _yes_no(value: bool) -> Text:
    from rich.text import Text

    return Text("yes", style="green") if value else Text("no", style="red")
