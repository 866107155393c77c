"""``nova alias``: point names at versions, split traffic, roll back, watch a canary."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nova.cli.commands.fn import confirm
from nova.cli.errors import Aborted, UsageProblem
from nova.cli.state import CliState, state_of

app = typer.Typer(
    name="alias",
    help="Route aliases to versions, with canaries and rollback.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Function name.")]
AliasArg = Annotated[str, typer.Argument(metavar="ALIAS", help="Alias name, e.g. prod.")]


@app.command("set")
def set_alias(
    ctx: typer.Context,
    name: NameArg,
    alias: AliasArg,
    version: Annotated[
        int, typer.Option("--version", "-v", min=1, help="The version that takes the traffic.")
    ],
    canary: Annotated[
        str | None,
        typer.Option(
            "--canary",
            metavar="N=PERCENT",
            help="Send PERCENT of the traffic to version N instead (e.g. 3=10).",
        ),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    auto: Annotated[
        bool,
        typer.Option(
            "--auto/--manual",
            help="Let canary analysis promote the canary step by step or roll it back.",
        ),
    ] = False,
    steps: Annotated[
        str, typer.Option("--steps", metavar="P,P,...", help="Canary weights to promote through.")
    ] = "10,25,50,100",
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, metavar="S", help="Seconds between steps.")
    ] = 60.0,
    window: Annotated[
        float,
        typer.Option("--window", min=0.1, metavar="S", help="Seconds of invocations compared."),
    ] = 300.0,
    min_samples: Annotated[
        int, typer.Option("--min-samples", min=1, help="Invocations of each version needed.")
    ] = 50,
    max_error_increase: Annotated[
        float,
        typer.Option(
            "--max-error-increase", min=0, max=1, help="Error-rate margin (0.05 = 5 points)."
        ),
    ] = 0.05,
    max_p95_increase: Annotated[
        float, typer.Option("--max-p95-increase", min=0, help="p95 margin (0.2 = 20 %).")
    ] = 0.2,
) -> None:
    """Create or replace an alias (the whole alias: a canary policy not asked for again is gone).

    Examples: `nova alias set fn prod -v 2`; a canary with 10 % on version 3, promoted by
    analysis: `nova alias set fn prod -v 2 --canary 3=10 --auto`.
    """
    from nova.cli.client import function_path

    state = state_of(ctx)
    body: dict[str, Any] = {"description": description}
    if canary is None:
        body["version"] = version
    else:
        number, percent = _canary(canary)
        body["routing_config"] = {
            "weights": [
                {"version": version, "weight": 100 - percent},
                {"version": number, "weight": percent},
            ]
        }
    if auto:
        body["canary"] = {
            "steps": _steps(steps),
            "interval_s": interval,
            "window_s": window,
            "min_samples": min_samples,
            "max_error_rate_increase": max_error_increase,
            "max_p95_increase": max_p95_increase,
        }
    record = state.client.call("PUT", function_path(name, "aliases", alias), json_body=body)
    if state.json_output:
        state.out.json(record)
        return
    state.out.line(f"{name}:{alias} -> {routing_text(record)}")
    state.out.note(f"invoke it with `nova invoke {name}:{alias}`")


@app.command("get")
def get_alias(ctx: typer.Context, name: NameArg, alias: AliasArg) -> None:
    """Show an alias: its routing, description and canary policy."""
    from nova.cli.client import function_path

    state = state_of(ctx)
    record = state.client.call("GET", function_path(name, "aliases", alias))
    if state.json_output:
        state.out.json(record)
        return
    state.out.fields(_describe(record if isinstance(record, dict) else {}))


@app.command("list")
def list_aliases(ctx: typer.Context, name: NameArg) -> None:
    """List the function's aliases and where each routes."""
    from nova.cli.client import function_path
    from nova.cli.render import fmt_time, fmt_value

    state = state_of(ctx)
    items = state.client.collect(function_path(name, "aliases"))
    if state.json_output:
        state.out.json({"items": items, "next": None})
        return
    if not items:
        state.out.note(f"no aliases of {name}; create one with `nova alias set {name} prod -v 1`")
        return
    state.out.table(
        ["ALIAS", "ROUTING", "CANARY", "REVISION", "UPDATED"],
        (
            [
                fmt_value(item.get("name")),
                routing_text(item),
                "auto" if item.get("canary") else "-",
                fmt_value(item.get("revision")),
                fmt_time(item.get("updated_at")),
            ]
            for item in items
        ),
    )


@app.command("delete")
def delete_alias(
    ctx: typer.Context,
    name: NameArg,
    alias: AliasArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an alias (its versions stay)."""
    from nova.cli.client import function_path

    state = state_of(ctx)
    if not yes and not confirm(f"delete alias {alias!r} of {name!r}?"):
        raise Aborted(f"{name}:{alias} was not deleted", hint="pass --yes to skip the question")
    body = state.client.call("DELETE", function_path(name, "aliases", alias))
    if state.json_output:
        state.out.json(body)
        return
    state.out.line(f"deleted {name}:{alias}")


@app.command("rollback")
def rollback(ctx: typer.Context, name: NameArg, alias: AliasArg) -> None:
    """Restore the alias's previous routing."""
    from nova.cli.client import function_path

    state = state_of(ctx)
    record = state.client.call("POST", function_path(name, "aliases", alias, "rollback"))
    if state.json_output:
        state.out.json(record)
        return
    state.out.line(f"{name}:{alias} rolled back -> {routing_text(record)}")


@app.command("status")
def status(
    ctx: typer.Context,
    name: NameArg,
    alias: AliasArg,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="History entries.")
    ] = 10,
) -> None:
    """The alias's routing, its canary analysis with the numbers, and its recent changes."""
    from nova.cli.client import function_path

    state = state_of(ctx)
    record = state.client.call("GET", function_path(name, "aliases", alias))
    history = state.client.call(
        "GET", function_path(name, "aliases", alias, "history"), params={"limit": limit}
    )
    changes = history.get("items", []) if isinstance(history, dict) else []
    if state.json_output:
        state.out.json({"alias": record, "history": changes})
        return
    record = record if isinstance(record, dict) else {}
    state.out.fields(_describe(record) + _analysis_rows(record.get("analysis")))
    _print_history(state, changes)


def routing_text(record: Any) -> str:
    """``2 (90%), 3 (10%)`` of an alias record."""
    weights = (
        (record.get("routing_config") or {}).get("weights") if isinstance(record, dict) else None
    )
    if not weights:
        return "-"
    return ", ".join(f"{entry.get('version')} ({entry.get('weight')}%)" for entry in weights)


def _describe(record: dict[str, Any]) -> list[tuple[str, str]]:
    from nova.cli.render import fmt_time, fmt_value

    policy = record.get("canary")
    policy_text = "-"
    if isinstance(policy, dict):
        policy_text = (
            f"steps {fmt_value(policy.get('steps'))} every {fmt_value(policy.get('interval_s'))}s, "
            f"window {fmt_value(policy.get('window_s'))}s, min {fmt_value(policy.get('min_samples'))} "
            f"samples, margins: errors +{fmt_value(policy.get('max_error_rate_increase'))}, "
            f"p95 +{fmt_value(policy.get('max_p95_increase'))}"
        )
    return [
        ("alias", f"{fmt_value(record.get('function'))}:{fmt_value(record.get('name'))}"),
        ("routing", routing_text(record)),
        ("description", fmt_value(record.get("description"))),
        ("canary", policy_text),
        ("revision", fmt_value(record.get("revision"))),
        ("updated", fmt_time(record.get("updated_at"))),
    ]


def _analysis_rows(analysis: Any) -> list[tuple[str, str]]:
    from nova.cli.render import fmt_time

    if not isinstance(analysis, dict):
        return [("analysis", "-")]
    rows = [
        ("analysis", f"{analysis.get('verdict', '-')}: {analysis.get('reason', '')}"),
        ("analysed", fmt_time(analysis.get("at"))),
    ]
    for role in ("stable", "new"):
        numbers = analysis.get(role)
        if isinstance(numbers, dict):
            rows.append((role, _numbers_text(numbers)))
    return rows


def _numbers_text(numbers: dict[str, Any]) -> str:
    from nova.cli.render import fmt_ms

    rate = numbers.get("error_rate")
    rate_text = f"{rate:.1%}" if isinstance(rate, int | float) else "-"
    return (
        f"version {numbers.get('version')}: {numbers.get('invocations')} invocations, "
        f"{numbers.get('errors')} errors ({rate_text}), p95 {fmt_ms(numbers.get('p95_ms'))}"
    )


def _print_history(state: CliState, changes: list[Any]) -> None:
    from nova.cli.render import fmt_time

    if not changes:
        return
    state.out.line("")
    state.out.table(
        ["WHEN", "FROM", "TO", "WHY", "DETAIL"],
        (
            [
                fmt_time(change.get("at")),
                routing_text({"routing_config": change.get("before")}),
                routing_text({"routing_config": change.get("after")}),
                str(change.get("reason") or "-"),
                str((change.get("detail") or {}).get("reason") or ""),
            ]
            for change in changes
            if isinstance(change, dict)
        ),
    )


def _canary(text: str) -> tuple[int, int]:
    number, separator, percent = text.partition("=")
    if not separator or not number.isdigit() or not percent.isdigit():
        raise UsageProblem(f"--canary {text!r}: use VERSION=PERCENT, e.g. 3=10")
    if not 1 <= int(percent) <= 99:
        raise UsageProblem(f"--canary {text!r}: the percentage must be within 1-99")
    return int(number), int(percent)


def _steps(text: str) -> list[int]:
    try:
        return [int(step) for step in text.split(",") if step.strip()]
    except ValueError:
        raise UsageProblem(
            f"--steps {text!r}: use increasing percentages, e.g. 10,25,50,100"
        ) from None
