"""``nova version``: publish, list, show and delete a function's immutable versions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nova.cli.commands.fn import confirm
from nova.cli.errors import Aborted
from nova.cli.state import state_of

app = typer.Typer(
    name="version", help="Publish and manage immutable versions.", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Function name.")]
NumberArg = Annotated[int, typer.Argument(metavar="N", min=1, help="Version number.")]


@app.command("publish")
def publish(
    ctx: typer.Context,
    name: NameArg,
    description: Annotated[
        str, typer.Option("--description", "-m", help="What this version is.")
    ] = "",
) -> None:
    """Freeze the function's current code and config as the next version.

    Publishing when nothing changed since the newest version returns that version.
    """
    from nova.cli.client import decode, function_path

    state = state_of(ctx)
    response = state.client.send(
        "POST", function_path(name, "versions"), json_body={"description": description}
    )
    version = decode(response)
    if state.json_output:
        state.out.json(version)
        return
    number = version.get("version") if isinstance(version, dict) else "?"
    if response.status_code == 201:
        state.out.line(f"published {name}:{number}")
    else:
        state.out.line(f"{name}:{number} already holds this code and config; nothing published")
    state.out.note(f"invoke it with `nova invoke {name}:{number}`")


@app.command("list")
def list_versions(ctx: typer.Context, name: NameArg) -> None:
    """List the function's versions, oldest first."""
    from nova.cli.client import function_path
    from nova.cli.render import fmt_bytes, fmt_time, fmt_value

    state = state_of(ctx)
    items = state.client.collect(function_path(name, "versions"))
    if state.json_output:
        state.out.json({"items": items, "next": None})
        return
    if not items:
        state.out.note(f"no versions of {name} yet; publish one with `nova version publish {name}`")
        return
    state.out.table(
        ["VERSION", "DESCRIPTION", "RUNTIME", "MEMORY", "CODE", "SHA256", "CREATED"],
        (
            [
                fmt_value(item.get("version")),
                fmt_value(item.get("description")),
                fmt_value(item.get("runtime")),
                f"{fmt_value(item.get('memory_mb'))} MB",
                fmt_bytes(item.get("code_size")),
                str(item.get("code_hash") or "-")[:12],
                fmt_time(item.get("created_at")),
            ]
            for item in items
        ),
    )


@app.command("get")
def get_version(ctx: typer.Context, name: NameArg, number: NumberArg) -> None:
    """Show one version's code hash and configuration."""
    from nova.cli.client import function_path
    from nova.cli.commands.fn import describe
    from nova.cli.render import fmt_value

    state = state_of(ctx)
    version = state.client.call("GET", function_path(name, "versions", str(number)))
    if state.json_output:
        state.out.json(version)
        return
    record: dict[str, Any] = version if isinstance(version, dict) else {}
    rows = [("version", fmt_value(record.get("version")))]
    rows += [
        row
        for row in describe({**record, "name": record.get("function")})
        if row[0] not in ("revision", "updated")
    ]
    state.out.fields(rows)


@app.command("delete")
def delete_version(
    ctx: typer.Context,
    name: NameArg,
    number: NumberArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a version no alias routes to."""
    from nova.cli.client import function_path

    state = state_of(ctx)
    if not yes and not confirm(f"delete version {number} of {name!r}?"):
        raise Aborted(f"{name}:{number} was not deleted", hint="pass --yes to skip the question")
    body = state.client.call("DELETE", function_path(name, "versions", str(number)))
    if state.json_output:
        state.out.json(body)
        return
    state.out.line(f"deleted {name}:{number}")
