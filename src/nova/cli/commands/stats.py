"""``nova stats``: the daemon's pools and invocation counters (GET /stats), or one function's
invocations per hour or minute (GET /functions/{name}/metrics) with a small chart."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nova.cli.state import CliState, state_of

SPARKS = "▁▂▃▄▅▆▇█"


def stats(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME]",
            help="A function: its invocations, errors, cold starts and latency per hour.",
        ),
    ] = None,
    minutes: Annotated[
        bool, typer.Option("--minutes", help="With NAME: the last 60 minutes, per minute.")
    ] = False,
) -> None:
    """Show each function's pool (instances, busy, idle, starting, waiting) and the running
    totals of every daemon sharing the store, kept across restarts; with NAME, the function's
    last 24 hours (or 60 minutes) as this daemon saw them."""
    from nova.cli.render import fmt_value

    state = state_of(ctx)
    if name is not None:
        _function_series(state, name, "minute" if minutes else "hour")
        return
    body = state.client.call("GET", "/stats")
    body = body if isinstance(body, dict) else {}
    if state.json_output:
        state.out.json(body)
        return
    pools = body.get("pools") or []
    if pools:
        columns = ["FUNCTION", "INSTANCES", "BUSY", "IDLE", "STARTING", "WAITING", "STARTED"]
        keys = ["function", "instances", "busy", "idle", "starting", "waiting", "started"]
        state.out.table(columns, ([fmt_value(pool.get(key)) for key in keys] for pool in pools))
    else:
        state.out.note("no function has been deployed to a pool yet")
    counters = body.get("invocations") or {}
    logs = body.get("logs") or {}
    queue = body.get("async") or {}
    if counters.get("persisted") is False:
        state.out.note(
            "the store cannot be read: the counts below are this daemon's since it started"
        )
    state.out.fields(
        [
            ("invocations", fmt_value(counters.get("invocations"))),
            ("errors", fmt_value(counters.get("errors"))),
            ("timeouts", fmt_value(counters.get("timeouts"))),
            ("cold starts", fmt_value(counters.get("cold_starts"))),
            ("waited for a start", fmt_value(counters.get("waited_for_start"))),
            ("pre-warmed starts", fmt_value(counters.get("prewarm_starts"))),
            ("failed starts", fmt_value(counters.get("failed_starts"))),
            ("VM snapshot restores", fmt_value(counters.get("vm_restores"))),
            ("VM restores failed", fmt_value(counters.get("vm_restore_failures"))),
            ("in flight", fmt_value(body.get("inflight"))),
            ("logs written", fmt_value(logs.get("written"))),
            ("logs spooled", fmt_value(logs.get("spooled"))),
            ("logs replayed", fmt_value(logs.get("replayed"))),
            ("logs dropped", fmt_value(logs.get("dropped"))),
            ("logs backlog", fmt_value(logs.get("backlog"))),
            ("async pending", fmt_value(queue.get("pending"))),
            ("async running", fmt_value(queue.get("running"))),
            ("async oldest (s)", fmt_value(queue.get("oldest_age_s"))),
            ("async accepted", fmt_value(counters.get("async_accepted"))),
            ("async retries", fmt_value(counters.get("async_retries"))),
            ("async dead letters", fmt_value(queue.get("dead"))),
        ]
    )


def _function_series(state: CliState, name: str, resolution: str) -> None:
    from nova.cli.client import function_path
    from nova.cli.errors import BadResponse
    from nova.cli.render import fmt_ms, fmt_value

    path = function_path(name, "metrics")
    body = state.client.call("GET", path, params={"resolution": resolution})
    buckets = body.get("buckets") if isinstance(body, dict) else None
    if not isinstance(buckets, list):
        raise BadResponse(f"GET {path} did not return {{buckets}}")
    if state.json_output:
        state.out.json(body)
        return
    busy = [b for b in buckets if isinstance(b, dict) and b.get("invocations")]
    if not busy:
        span = "hour" if resolution == "minute" else "24 hours"
        state.out.note(f"no invocations of {name} in the last {span} (on this daemon)")
        return
    stamp = slice(11, 16) if resolution == "minute" else slice(5, 16)
    columns = ["START", "INVOCATIONS", "ERRORS", "COLD", "P50", "P95", "P99"]
    state.out.table(
        columns,
        (
            [
                str(bucket.get("start", ""))[stamp].replace("T", " "),
                fmt_value(bucket.get("invocations")),
                fmt_value(bucket.get("errors")),
                fmt_value(bucket.get("cold_starts")),
                fmt_ms(bucket.get("p50_ms")),
                fmt_ms(bucket.get("p95_ms")),
                fmt_ms(bucket.get("p99_ms")),
            ]
            for bucket in busy
        ),
    )
    every = [b if isinstance(b, dict) else {} for b in buckets]
    state.out.fields(
        [
            ("invocations", spark([b.get("invocations") for b in every])),
            ("p95 latency", spark([b.get("p95_ms") for b in every])),
        ]
    )


def spark(values: list[Any]) -> str:
    """One character per bucket, the tallest for the largest value; a space where there is none."""
    numbers = [v if isinstance(v, int | float) and v > 0 else None for v in values]
    top = max((v for v in numbers if v is not None), default=0)
    if not top:
        return " " * len(values)
    last = len(SPARKS) - 1
    return "".join(" " if v is None else SPARKS[round(v / top * last)] for v in numbers)
