"""``nova trigger``: queue triggers - run a function for every message of a NATS subject, a
RabbitMQ queue or a Redis stream."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from nova.cli.errors import UsageProblem
from nova.cli.state import CliState, state_of

app = typer.Typer(
    name="trigger",
    help="Queue triggers: add, list, show, pause, resume or delete.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Trigger name.")]
_TARGET = {"nats": "subject", "rabbitmq": "queue", "redis": "stream"}


def _path(name: str, action: str = "") -> str:
    return "/triggers/" + quote(name, safe="") + (f"/{action}" if action else "")


@app.command("add")
def add(
    ctx: typer.Context,
    name: NameArg,
    function: Annotated[
        str, typer.Option("--function", "-f", metavar="NAME[:QUALIFIER]", help="What runs.")
    ],
    source: Annotated[
        str, typer.Option("--source", "-s", metavar="SOURCE", help="nats, rabbitmq or redis.")
    ],
    target: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="SUBJECT|QUEUE|STREAM",
            help="The NATS subject, RabbitMQ queue or Redis stream to consume.",
        ),
    ],
    url: Annotated[
        str, typer.Option("--url", help="The broker (default: the daemon's triggers.*_url).")
    ] = "",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1000)] = 10,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1000)] = 1,
    paused: Annotated[bool, typer.Option("--paused", help="Add it without consuming.")] = False,
) -> None:
    """Add a trigger; every daemon on the store starts consuming (each message runs once)."""
    state = state_of(ctx)
    field = _TARGET.get(source)
    if field is None:
        raise UsageProblem(f"--source {source!r}: use nats, rabbitmq or redis")
    body: dict[str, Any] = {
        "name": name,
        "function": function,
        "source": source,
        field: target,
        "batch_size": batch_size,
        "concurrency": concurrency,
        "enabled": not paused,
    }
    if url:
        body["url"] = url
    trigger = state.client.call("POST", "/triggers", json_body=body)
    if state.json_output:
        state.out.json(trigger)
        return
    state.out.line(f"added trigger {name}: {source} {field} {target!r} -> {function}")
    state.out.note(f"see its consumer with `nova trigger show {name}`")


@app.command("list")
def list_triggers(ctx: typer.Context) -> None:
    """Triggers, with the state of this daemon's consumer of each."""
    state = state_of(ctx)
    items = state.client.collect("/triggers")
    if state.json_output:
        state.out.json({"items": items, "next": None})
        return
    if not items:
        state.out.note("no triggers yet; add one with `nova trigger add`")
        return
    state.out.table(
        ["NAME", "SOURCE", "FROM", "FUNCTION", "STATE", "ACKED", "DEAD"],
        [_row(item) for item in items],
    )


@app.command("show")
def show(ctx: typer.Context, name: NameArg) -> None:
    """One trigger and this daemon's consumer of it (state, last error, counts, lag)."""
    state = state_of(ctx)
    trigger = state.client.call("GET", _path(name))
    if state.json_output:
        state.out.json(trigger)
        return
    state.out.pretty_json(trigger)


@app.command("pause")
def pause(ctx: typer.Context, name: NameArg) -> None:
    """Stop consuming; messages wait in the broker."""
    _switch(state_of(ctx), name, "pause", "paused")


@app.command("resume")
def resume(ctx: typer.Context, name: NameArg) -> None:
    """Consume again."""
    _switch(state_of(ctx), name, "resume", "resumed")


@app.command("delete")
def delete(ctx: typer.Context, name: NameArg) -> None:
    """Delete a trigger; its consumers stop (the broker keeps its durable consumer, queue or
    consumer group)."""
    state = state_of(ctx)
    trigger = state.client.call("DELETE", _path(name))
    if state.json_output:
        state.out.json(trigger)
        return
    state.out.line(f"deleted trigger {name}")


def _switch(state: CliState, name: str, action: str, done: str) -> None:
    trigger = state.client.call("POST", _path(name, action))
    if state.json_output:
        state.out.json(trigger)
        return
    state.out.line(f"{done} trigger {name}")


def _row(item: dict[str, Any]) -> tuple[str, ...]:
    source = str(item.get("source"))
    consumer = item.get("consumer") or {}
    if not item.get("enabled"):
        status = "paused"
    else:
        status = str(consumer.get("state", "-"))
        if consumer.get("last_error"):
            status += f" ({consumer['last_error']})"
    return (
        str(item.get("name")),
        source,
        str(item.get(_TARGET.get(source, ""), "-")),
        str(item.get("function")),
        status,
        str(consumer.get("acked", "-")),
        str(consumer.get("dead_lettered", "-")),
    )
