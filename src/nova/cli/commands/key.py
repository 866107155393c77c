"""``nova key``: create, list, disable, enable and delete API keys."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from nova.cli.durations import parse_duration_s
from nova.cli.state import state_of

app = typer.Typer(
    name="key", help="API keys: who may call the API, and what they may do.", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Key name.")]


def _path(name: str, *rest: str) -> str:
    return "/".join(["/keys", quote(name, safe=""), *rest])


@app.command("create")
def create_key(
    ctx: typer.Context,
    name: NameArg,
    role: Annotated[str, typer.Option(help="admin, developer, invoker or viewer.")] = "developer",
    scope: Annotated[
        str, typer.Option(help="'*' or comma-separated function-name patterns (orders-*).")
    ] = "*",
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", metavar="DURATION", help="Lifetime, e.g. 30d, 12h, 90m."),
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option(
            "--environment",
            metavar="ORG/PROJECT/ENV",
            help="The one environment the key acts in, or '*' for every one (default: the "
            "global --env when given, else every one).",
        ),
    ] = None,
) -> None:
    """Create a key; it is printed this once (store it now)."""
    state = state_of(ctx)
    body: dict[str, Any] = {"name": name, "role": role, "scope": scope}
    if environment is not None:
        body["environment"] = environment
    if expires_in is not None:
        body["expires_in_s"] = parse_duration_s(expires_in)
    created = state.client.call("POST", "/keys", json_body=body)
    if state.json_output:
        state.out.json(created)
        return
    state.out.line(str(created.get("key")))
    state.out.note(
        f"created {created.get('role')} key {name} (id {created.get('id')}) for environment "
        f"{created.get('environment')}; it is shown "
        "only now: use it as 'Authorization: Bearer <key>' or NOVA_API_KEY; for AWS SDKs "
        f"(Lambda API): aws_access_key_id={created.get('access_key_id')} "
        f"aws_secret_access_key={created.get('secret_access_key')}"
    )


@app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """List keys: names, roles, scopes, expiry and last use (never the keys)."""
    from nova.cli.render import fmt_time

    state = state_of(ctx)
    items = state.client.collect("/keys")
    if state.json_output:
        state.out.json({"items": items, "next": None})
        return
    state.out.table(
        ["NAME", "ID", "ROLE", "ENVIRONMENT", "SCOPE", "ENABLED", "EXPIRES", "LAST USED"],
        (
            [
                str(item.get("name")),
                str(item.get("id")),
                str(item.get("role")),
                str(item.get("environment")),
                str(item.get("scope")),
                "yes" if item.get("enabled") else "no",
                fmt_time(item.get("expires_at")) if item.get("expires_at") else "never",
                fmt_time(item.get("last_used_at")) if item.get("last_used_at") else "never",
            ]
            for item in items
        ),
    )


def _change(ctx: typer.Context, method: str, path: str, done: str) -> None:
    state = state_of(ctx)
    key = state.client.call(method, path)
    if state.json_output:
        state.out.json(key)
        return
    state.out.line(f"{done} key {key.get('name')}")


@app.command("delete")
def delete_key(ctx: typer.Context, name: NameArg) -> None:
    """Delete a key: requests carrying it are refused from now on."""
    _change(ctx, "DELETE", _path(name), "deleted")


@app.command("disable")
def disable_key(ctx: typer.Context, name: NameArg) -> None:
    """Disable a key (refused until enabled again)."""
    _change(ctx, "POST", _path(name, "disable"), "disabled")


@app.command("enable")
def enable_key(ctx: typer.Context, name: NameArg) -> None:
    """Enable a disabled key."""
    _change(ctx, "POST", _path(name, "enable"), "enabled")
