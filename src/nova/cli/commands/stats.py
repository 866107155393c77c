"""``nova stats``: the daemon's pools and invocation counters (GET /stats)."""

from __future__ import annotations

import typer

from nova.cli.state import state_of


def stats(ctx: typer.Context) -> None:
    """Show each function's pool (instances, busy, idle, starting, waiting) and the running
    totals of every daemon sharing the store, kept across restarts."""
    from nova.cli.render import fmt_value

    state = state_of(ctx)
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
