"""``nova fn create`` and ``nova fn update``: function config and code from the command line."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from nova.cli.errors import UsageProblem
from nova.cli.state import CliState, state_of

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Mode(StrEnum):
    PERSISTENT = "persistent"
    PROCESS = "process"


# Options shared by create and update (all optional on update).
HandlerOpt = Annotated[
    str | None,
    typer.Option(
        "--handler",
        help="module.function",
        show_default="handler.handler (Python), index.handler (Node)",
    ),
]
CodeFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--code-file", exists=True, dir_okay=False, metavar="FILE", help="One source file."
    ),
]
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        exists=True,
        file_okay=False,
        metavar="DIR",
        help="A directory of text files (skips __pycache__ and dot-directories).",
    ),
]
ZipOpt = Annotated[
    Path | None,
    typer.Option(
        "--zip", exists=True, dir_okay=False, metavar="FILE.zip", help="A zip archive, as-is."
    ),
]
MemoryOpt = Annotated[
    int | None, typer.Option("--memory", min=1, metavar="MB", help="Memory limit in MB.")
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", min=0.001, metavar="SECONDS", help="Per-invocation timeout."),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--env",
        "-e",
        metavar="KEY=VALUE",
        help="Environment variable; repeat for more. On update the given set replaces the old.",
    ),
]
ModeOpt = Annotated[Mode | None, typer.Option("--mode", help="Worker lifetime.")]
MinOpt = Annotated[int | None, typer.Option("--min-replicas", min=0, help="Kept warm.")]
MaxOpt = Annotated[int | None, typer.Option("--max-replicas", min=1, help="Scale-out limit.")]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option("--concurrency", min=1, help="Requests one instance serves at once."),
]
BackendOpt = Annotated[
    str | None, typer.Option("--backend", help="Sandbox backend (default: the daemon's).")
]
NetworkOpt = Annotated[
    bool | None, typer.Option("--network/--no-network", help="Allow outbound network.")
]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="Free text.")]


def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Function name: a-z, 0-9 and '-'.")],
    runtime: Annotated[
        str, typer.Option("--runtime", "-r", help="python, node, ... (see `nova runtimes`).")
    ],
    handler: HandlerOpt = None,
    code_file: CodeFileOpt = None,
    directory: DirOpt = None,
    zip_file: ZipOpt = None,
    memory: MemoryOpt = None,
    timeout: TimeoutOpt = None,
    env: EnvOpt = None,
    mode: ModeOpt = None,
    min_replicas: MinOpt = None,
    max_replicas: MaxOpt = None,
    concurrency: ConcurrencyOpt = None,
    backend: BackendOpt = None,
    network: NetworkOpt = None,
    description: DescriptionOpt = None,
) -> None:
    """Create a function from --code-file, --dir or --zip."""
    from nova.cli.code_source import CODE_OPTIONS, read_code_source

    state = state_of(ctx)
    source = read_code_source(code_file, directory, zip_file)
    if source is None:
        raise UsageProblem(f"give the function's code with {CODE_OPTIONS}")
    meta: dict[str, Any] = {"name": name, "runtime": runtime}
    meta |= config_fields(
        handler=handler,
        memory=memory,
        timeout=timeout,
        env=env,
        mode=mode,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        concurrency=concurrency,
        backend=backend,
        network=network,
        description=description,
    )
    if source.zip_bytes is not None:
        record = state.client.call(
            "POST",
            "/functions",
            data={"meta": json.dumps(meta)},
            files={"zip": (source.zip_name or "code.zip", source.zip_bytes, "application/zip")},
        )
    else:
        record = state.client.call("POST", "/functions", json_body=meta | source.fields)
    _show(state, "created", record)


def update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The function to change.")],
    runtime: Annotated[str | None, typer.Option("--runtime", "-r", help="New runtime.")] = None,
    handler: HandlerOpt = None,
    code_file: CodeFileOpt = None,
    directory: DirOpt = None,
    zip_file: ZipOpt = None,
    memory: MemoryOpt = None,
    timeout: TimeoutOpt = None,
    env: EnvOpt = None,
    mode: ModeOpt = None,
    min_replicas: MinOpt = None,
    max_replicas: MaxOpt = None,
    concurrency: ConcurrencyOpt = None,
    backend: BackendOpt = None,
    network: NetworkOpt = None,
    description: DescriptionOpt = None,
) -> None:
    """Change a function: only the options given are sent."""
    from nova.cli.client import function_path
    from nova.cli.code_source import read_code_source

    state = state_of(ctx)
    source = read_code_source(code_file, directory, zip_file)
    patch: dict[str, Any] = {} if runtime is None else {"runtime": runtime}
    patch |= config_fields(
        handler=handler,
        memory=memory,
        timeout=timeout,
        env=env,
        mode=mode,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        concurrency=concurrency,
        backend=backend,
        network=network,
        description=description,
    )
    if source is not None:
        patch |= source.fields
    if not patch and source is None:
        raise UsageProblem("nothing to update; give at least one option (see --help)")
    record: Any = None
    if source is not None and source.zip_bytes is not None:
        record = state.client.call(
            "PUT",
            function_path(name, "code"),
            content=source.zip_bytes,
            headers={"Content-Type": "application/zip"},
        )
    if patch:
        record = state.client.call("PATCH", function_path(name), json_body=patch)
    _show(state, "updated", record)


def config_fields(
    *,
    handler: str | None,
    memory: int | None,
    timeout: float | None,
    env: list[str] | None,
    mode: Mode | None,
    min_replicas: int | None,
    max_replicas: int | None,
    concurrency: int | None,
    backend: str | None,
    network: bool | None,
    description: str | None,
) -> dict[str, Any]:
    """The API body fields for the options that were given (``None`` = not given)."""
    fields: dict[str, Any] = {
        "handler": handler,
        "memory_mb": memory,
        "timeout_s": timeout,
        "env": None if env is None else parse_env(env),
        "mode": None if mode is None else mode.value,
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "instance_concurrency": concurrency,
        "backend": backend,
        "network": network,
        "description": description,
    }
    return {key: value for key, value in fields.items() if value is not None}


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _ENV_KEY.fullmatch(key):
            raise UsageProblem(f"--env {pair!r} is not KEY=VALUE (KEY: letters, digits, '_')")
        env[key] = value
    return env


def _show(state: CliState, verb: str, record: Any) -> None:
    from nova.cli.render import fmt_bytes

    out = state.out
    if state.json_output:
        out.json(record)
        return
    if not isinstance(record, dict):
        out.line(f"{verb}")
        return
    code_hash = str(record.get("code_hash") or "")
    parts = [
        f"{verb} {record.get('name')}",
        str(record.get("runtime")),
        str(record.get("handler")),
        f"revision {record.get('revision')}",
        fmt_bytes(record.get("code_size")),
    ]
    if code_hash:
        parts.append(f"sha256:{code_hash[:12]}")
    out.line(" · ".join(parts))
    if verb == "created":
        out.note(f"invoke it with `nova invoke {record.get('name')}`")
