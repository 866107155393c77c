"""``nova fn``: create, list, show, change and delete functions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nova.cli.commands import fn_deploy
from nova.cli.errors import Aborted, UsageProblem
from nova.cli.state import state_of

app = typer.Typer(name="fn", help="Manage functions.", no_args_is_help=True)
app.command("create")(fn_deploy.create)
app.command("update")(fn_deploy.update)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Function name.")]


@app.command("list")
def list_functions(ctx: typer.Context) -> None:
    """List every function (all pages)."""
    from nova.cli.render import fmt_time, fmt_unit, fmt_value

    state = state_of(ctx)
    items = state.client.collect("/functions")
    out = state.out
    if state.json_output:
        out.json({"items": items, "next": None})
        return
    if not items:
        out.note(
            "no functions yet; create one with "
            "`nova fn create NAME --runtime python --code-file handler.py`"
        )
        return
    out.table(
        ["NAME", "RUNTIME", "HANDLER", "MODE", "MEMORY", "TIMEOUT", "REVISION", "UPDATED"],
        (
            [
                fmt_value(item.get("name")),
                fmt_value(item.get("runtime")),
                fmt_value(item.get("handler")),
                fmt_value(item.get("mode")),
                fmt_unit(item.get("memory_mb"), "MB"),
                fmt_unit(item.get("timeout_s"), "s"),
                fmt_value(item.get("revision")),
                fmt_time(item.get("updated_at")),
            ]
            for item in items
        ),
    )


@app.command("get")
def get_function(ctx: typer.Context, name: NameArg) -> None:
    """Show one function's configuration."""
    from nova.cli.client import function_path

    state = state_of(ctx)
    record = state.client.call("GET", function_path(name))
    if state.json_output:
        state.out.json(record)
        return
    state.out.fields(describe(record if isinstance(record, dict) else {}))


@app.command("build-log")
def build_log(ctx: typer.Context, name: NameArg) -> None:
    """Show the function's build: a compiled language's compiler output, else the log of
    installing its requirements.txt / package.json."""
    from nova.cli.client import function_path

    state = state_of(ctx)
    build = state.client.call("GET", function_path(name) + "/build-log")
    if state.json_output:
        state.out.json(build)
        return
    build = build if isinstance(build, dict) else {}
    if build.get("status") == "none":
        state.out.line("the function's code names no dependencies (requirements.txt, package.json)")
        return
    state.out.line(f"build {build.get('key')}: {build.get('status')}")
    state.out.line(str(build.get("log") or ""))


@app.command("instances")
def list_instances(ctx: typer.Context, name: NameArg) -> None:
    """Show the function's running instances: id, state, pid, image, usage."""
    from nova.cli.client import function_path
    from nova.cli.render import fmt_unit, fmt_value

    state = state_of(ctx)
    body = state.client.call("GET", function_path(name) + "/instances")
    body = body if isinstance(body, dict) else {}
    if state.json_output:
        state.out.json(body)
        return
    items = body.get("items") or []
    if not items:
        state.out.note(f"no running instances of {name} (the next invocation starts one)")
        return
    state.out.table(
        ["ID", "STATE", "PID", "IMAGE", "INFLIGHT", "INVOCATIONS", "AGE", "IDLE"],
        (
            [
                fmt_value(item.get("id")),
                fmt_value(item.get("state")),
                fmt_value(item.get("pid")),
                fmt_value(item.get("image_id")),
                fmt_value(item.get("inflight")),
                fmt_value(item.get("invocations")),
                fmt_unit(item.get("age_s"), "s"),
                fmt_unit(item.get("idle_s"), "s"),
            ]
            for item in items
        ),
    )
    state.out.note(f"backend: {fmt_value(body.get('backend'))}")


@app.command("scale")
def scale(
    ctx: typer.Context,
    name: NameArg,
    replicas: Annotated[int, typer.Argument(metavar="0", help="Only 0 (scale to zero).")],
) -> None:
    """Scale to zero: stop the warm instances, keep the snapshot (the next call forks it)."""
    from nova.cli.client import function_path

    if replicas != 0:
        raise UsageProblem(
            f"only `nova fn scale {name} 0` is supported; set min_replicas and max_replicas "
            f"with `nova fn update {name}` for other counts"
        )
    state = state_of(ctx)
    body = state.client.call("DELETE", function_path(name) + "/instances")
    if state.json_output:
        state.out.json(body)
        return
    stopped = body.get("stopped", 0) if isinstance(body, dict) else 0
    state.out.line(f"stopped {stopped} instance(s) of {name}")
    state.out.note("its snapshot stays: `nova snapshot list` shows it")


@app.command("delete")
def delete_function(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a function, its code and its instances."""
    from nova.cli.client import decode, function_path

    state = state_of(ctx)
    if not yes and not confirm(f"delete function {name!r}?"):
        raise Aborted(f"function {name!r} was not deleted", hint="pass --yes to skip the question")
    body = decode(state.client.send("DELETE", function_path(name)))
    if state.json_output:
        state.out.json(body if body is not None else {"name": name, "deleted": True})
        return
    state.out.line(f"deleted {name}")


def describe(record: dict[str, Any]) -> list[tuple[str, str]]:
    """``nova fn get``'s rows, in reading order."""
    from nova.cli.render import fmt_bytes, fmt_time, fmt_unit, fmt_value

    env = record.get("env") or {}
    env_text = "\n".join(f"{key}={value}" for key, value in sorted(env.items())) or "-"
    code_hash = record.get("code_hash")
    code = fmt_bytes(record.get("code_size")) + (f"  sha256:{code_hash}" if code_hash else "")
    replicas = f"{fmt_value(record.get('min_replicas'))}-{fmt_value(record.get('max_replicas'))}"
    compiled = record.get("compile_status")
    if compiled == "failed":
        compiled += f"  (the compiler's output: nova fn build-log {record.get('name')})"
    return [
        ("name", fmt_value(record.get("name"))),
        ("runtime", fmt_value(record.get("runtime"))),
        ("handler", fmt_value(record.get("handler"))),
        ("mode", fmt_value(record.get("mode"))),
        ("memory", fmt_unit(record.get("memory_mb"), "MB")),
        ("timeout", fmt_unit(record.get("timeout_s"), "s")),
        ("replicas", replicas),
        ("concurrency", fmt_value(record.get("instance_concurrency"))),
        ("backend", fmt_value(record.get("backend"))),
        ("network", fmt_value(record.get("network"))),
        ("env", env_text),
        ("description", fmt_value(record.get("description"))),
        ("code", code),
        *([("compile", str(compiled))] if compiled is not None else []),
        ("revision", fmt_value(record.get("revision"))),
        ("created", fmt_time(record.get("created_at"))),
        ("updated", fmt_time(record.get("updated_at"))),
    ]


def confirm(question: str) -> bool:
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:  # end of input (not a terminal) counts as "no"
        return False
