"""``nova slo``: each function's SLOs over a window (GET /slo), with the error budget left."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nova.cli.durations import parse_duration_s
from nova.cli.state import state_of


def slo(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="One function.")] = None,
    window: Annotated[
        str | None,
        typer.Option("--window", "-w", help="How far back: 30m, 1h, 24h (1 minute to 24 hours)."),
    ] = None,
) -> None:
    """Show each function's success rate, warm and cold p95 latency and cold-start ratio over a
    window against its targets (slo.* in the daemon's config), and the error budget left."""
    from nova.cli.errors import BadResponse
    from nova.cli.render import fmt_ms, fmt_value

    state = state_of(ctx)
    params: dict[str, Any] = {}
    if window is not None:
        params["window_s"] = parse_duration_s(window)
    if name is not None:
        params["function"] = name
    body = state.client.call("GET", "/slo", params=params)
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise BadResponse("GET /slo did not return an {items} list")
    if state.json_output:
        state.out.json(body)
        return
    if not items:
        state.out.note("no invocations on this daemon yet: nothing to measure")
        return
    columns = ["FUNCTION", "INVOCATIONS", "SUCCESS", "WARM P95", "COLD P95", "COLD RATIO"]
    columns += ["BUDGET LEFT", "STATUS"]
    rows = []
    for item in (i for i in items if isinstance(i, dict)):
        targets = item.get("targets") or {}
        breaches = item.get("breaches") or []
        rows.append(
            [
                str(item.get("function")),
                fmt_value(item.get("invocations")),
                f"{_pct(item.get('success_rate'))} / {_pct(targets.get('success_rate'))}",
                f"{fmt_ms(item.get('warm_p95_ms'))} / {fmt_ms(targets.get('warm_p95_ms'))}",
                f"{fmt_ms(item.get('cold_p95_ms'))} / {fmt_ms(targets.get('cold_p95_ms'))}",
                f"{_pct(item.get('cold_start_ratio'))} / {_pct(targets.get('cold_start_ratio'))}",
                _pct(item.get("error_budget_left")),
                "ok" if not breaches else "missed: " + ", ".join(map(str, breaches)),
            ]
        )
    state.out.table(columns, rows)
    state.out.note(f"window: the last {fmt_value(body.get('window_s'))} s, as this daemon saw it")


def _pct(value: Any) -> str:
    return f"{value * 100:.2f} %" if isinstance(value, int | float) else "-"
