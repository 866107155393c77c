"""``nova invocations get``: the status, result and errors of an asynchronous invocation."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nova.cli.errors import BadResponse
from nova.cli.state import CliState, state_of

app = typer.Typer(
    name="invocations",
    help="Follow asynchronous invocations (nova invoke --async).",
    no_args_is_help=True,
)


@app.command("get")
def get(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request id of the 202.")],
) -> None:
    """Show an asynchronous invocation: status, attempts, result, every failed attempt."""
    state = state_of(ctx)
    event = fetch(state, request_id)
    if state.json_output:
        state.out.json(event)
        return
    show(state, event)


def fetch(state: CliState, request_id: str) -> dict[str, Any]:
    from urllib.parse import quote

    event = state.client.call("GET", f"/invocations/{quote(request_id, safe='')}")
    if not isinstance(event, dict) or "status" not in event:
        raise BadResponse(f"GET /invocations/{request_id} returned no invocation")
    return event


def show(state: CliState, event: dict[str, Any]) -> None:
    from nova.cli.render import fmt_time, fmt_value

    qualifier = event.get("qualifier")
    function = f"{event.get('function')}:{qualifier}" if qualifier else str(event.get("function"))
    pairs = [
        ("request id", str(event.get("request_id"))),
        ("function", function),
        ("status", str(event.get("status"))),
        ("attempts", fmt_value(event.get("attempts"))),
        ("source", fmt_value(event.get("source"))),
        ("created", fmt_time(event.get("created_at"))),
        ("finished", fmt_time(event.get("finished_at"))),
    ]
    if event.get("next_attempt_at") and event.get("attempts"):
        pairs.append(("next attempt", fmt_time(event.get("next_attempt_at"))))
    if event.get("idempotency_key"):
        pairs.append(("idempotency key", str(event["idempotency_key"])))
    state.out.fields(pairs)
    result = event.get("result")
    if isinstance(result, dict) and event.get("status") == "succeeded":
        state.out.pretty_json(result.get("output"))
    for error in event.get("errors") or []:
        state.out.note(
            f"attempt {error.get('attempt')} · {fmt_time(error.get('at'))} · "
            f"{error.get('type')}: {error.get('message')}"
        )
