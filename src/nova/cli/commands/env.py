"""``nova env``: environments (organisation/project/environment) and their quotas."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from nova.cli.errors import UsageProblem
from nova.cli.state import CliState, state_of

app = typer.Typer(
    name="env",
    help="Environments (organisation/project/environment) and their quotas; pick one for any "
    "command with the global --env.",
    no_args_is_help=True,
)

EnvArg = Annotated[str, typer.Argument(metavar="ORG/PROJECT/ENV", help="The environment.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="QUOTA=LIMIT",
        help="A quota: max_functions, max_memory_mb, max_code_bytes, max_concurrency or "
        "log_retention_days; LIMIT 'none' lifts it. Repeat for several.",
    ),
]


def _path(environment: str) -> str:
    return "/environments/" + "/".join(quote(part, safe="") for part in environment.split("/"))


def _quotas(assignments: list[str] | None) -> dict[str, float | None]:
    quotas: dict[str, float | None] = {}
    for assignment in assignments or []:
        name, equals, limit = assignment.partition("=")
        if not equals or not name:
            raise UsageProblem(f"--set {assignment!r}: write QUOTA=LIMIT, e.g. max_functions=50")
        if limit.strip().lower() in ("none", "null", ""):
            quotas[name.strip()] = None
            continue
        try:
            quotas[name.strip()] = float(limit)
        except ValueError:
            raise UsageProblem(f"--set {assignment!r}: the limit is a number or 'none'") from None
    return quotas


def _show(state: CliState, record: dict[str, Any], verb: str) -> None:
    if state.json_output:
        state.out.json(record)
        return
    quotas = record.get("quotas") or {}
    limits = ", ".join(f"{name}={value:g}" for name, value in sorted(quotas.items()))
    state.out.line(f"{verb} {record.get('environment')}: {limits or 'no quotas'}")


@app.command("list")
def list_environments(ctx: typer.Context) -> None:
    """List environments and their quotas (a key bound to one sees only its own)."""
    from nova.cli.render import fmt_time

    state = state_of(ctx)
    page = state.client.call("GET", "/environments")
    if state.json_output:
        state.out.json(page)
        return
    state.out.table(
        ["ENVIRONMENT", "QUOTAS", "CREATED"],
        (
            [
                str(item.get("environment")),
                ", ".join(f"{k}={v:g}" for k, v in sorted(item["quotas"].items())) or "-",
                fmt_time(item.get("created_at")),
            ]
            for item in page.get("items", [])
        ),
    )


@app.command("create")
def create_environment(ctx: typer.Context, environment: EnvArg, quota: SetOption = None) -> None:
    """Create an environment, optionally with quotas."""
    state = state_of(ctx)
    body = {"environment": environment, "quotas": _quotas(quota)}
    _show(state, state.client.call("POST", "/environments", json_body=body), "created")
    if not state.json_output:
        state.out.note(f"act in it with `nova --env {environment} ...` or NOVA_ENV={environment}")


# What each quota is measured against in GET /environments/{path}'s usage.
_USED_BY = {
    "max_functions": "functions",
    "max_code_bytes": "code_bytes",
    "max_concurrency": "running",
}


@app.command("show")
def show_environment(ctx: typer.Context, environment: EnvArg) -> None:
    """One environment: each quota, its limit and what the environment uses of it."""
    from dataclasses import fields

    from nova.core.quotas import Quotas  # here: the other commands need not import it

    state = state_of(ctx)
    record = state.client.call("GET", _path(environment))
    if state.json_output:
        state.out.json(record)
        return
    quotas, usage = record.get("quotas") or {}, record.get("usage") or {}
    state.out.line(f"environment {record.get('environment')}")
    state.out.table(
        ["QUOTA", "LIMIT", "IN USE"],
        (
            [
                quota,
                f"{quotas[quota]:g}" if quota in quotas else "-",
                str(usage[_USED_BY[quota]]) if quota in _USED_BY else "-",
            ]
            for quota in (item.name for item in fields(Quotas))
        ),
    )
    state.out.note("running counts this daemon's invocations; max_memory_mb is per function")


@app.command("quota")
def set_quotas(ctx: typer.Context, environment: EnvArg, quota: SetOption = None) -> None:
    """Set quotas (the ones not named are kept)."""
    state = state_of(ctx)
    changes = _quotas(quota)
    if not changes:
        raise UsageProblem("name at least one quota: --set max_functions=50")
    record = state.client.call("PATCH", _path(environment) + "/quotas", json_body=changes)
    _show(state, record, "quotas of")


@app.command("delete")
def delete_environment(ctx: typer.Context, environment: EnvArg) -> None:
    """Delete an empty environment (its functions and secrets must be deleted first)."""
    state = state_of(ctx)
    deleted = state.client.call("DELETE", _path(environment))
    if state.json_output:
        state.out.json(deleted)
        return
    state.out.line(f"deleted environment {environment}")
