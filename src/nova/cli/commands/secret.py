"""``nova secret``: set, list and delete encrypted secrets (values are never shown)."""

from __future__ import annotations

import sys
from typing import Annotated
from urllib.parse import quote

import typer

from nova.cli.errors import UsageProblem
from nova.cli.state import state_of

app = typer.Typer(
    name="secret",
    help="Encrypted secrets a function's env refers to as $SECRET:name.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Secret name.")]


def _path(name: str) -> str:
    return "/secrets/" + quote(name, safe="")


def _read_value(value: str | None) -> str:
    """--value, else standard input when it is not a terminal, else a hidden prompt."""
    if value is not None:
        return value
    if not sys.stdin.isatty():
        text = sys.stdin.read()
        return text[:-1] if text.endswith("\n") else text
    entered: str = typer.prompt("value", hide_input=True, confirmation_prompt=True, err=True)
    return entered


@app.command("set")
def set_secret(
    ctx: typer.Context,
    name: NameArg,
    value: Annotated[
        str | None,
        typer.Option(
            "--value",
            help="The value (visible in shell history and `ps`: prefer stdin or the prompt).",
        ),
    ] = None,
) -> None:
    """Create or replace a secret. The value comes from --value, standard input (one
    trailing newline dropped) or a prompt; functions using it get new instances."""
    state = state_of(ctx)
    secret = _read_value(value)
    if not secret:
        raise UsageProblem("the value is empty; give one with --value, on stdin or at the prompt")
    response = state.client.send("PUT", _path(name), json_body={"value": secret})
    if state.json_output:
        state.out.json(response.json())
        return
    verb = "created" if response.status_code == 201 else "updated"
    state.out.line(f"{verb} secret {name}")
    state.out.note(f'use it in a function\'s env as "$SECRET:{name}"')


@app.command("list")
def list_secrets(ctx: typer.Context) -> None:
    """List secrets: names and dates, never values."""
    from nova.cli.render import fmt_time

    state = state_of(ctx)
    items = state.client.collect("/secrets")
    if state.json_output:
        state.out.json({"items": items, "next": None})
        return
    if not items:
        state.out.note("no secrets yet; set one with `nova secret set NAME`")
        return
    state.out.table(
        ["NAME", "CREATED", "UPDATED"],
        (
            [
                str(item.get("name")),
                fmt_time(item.get("created_at")),
                fmt_time(item.get("updated_at")),
            ]
            for item in items
        ),
    )


@app.command("delete")
def delete_secret(ctx: typer.Context, name: NameArg) -> None:
    """Delete a secret. Functions that refer to it fail to start until it is set again."""
    state = state_of(ctx)
    deleted = state.client.call("DELETE", _path(name))
    if state.json_output:
        state.out.json(deleted)
        return
    state.out.line(f"deleted secret {name}")
