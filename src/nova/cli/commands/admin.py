"""``nova admin``: operator tasks (the master key's rotation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nova.cli.errors import UsageProblem
from nova.cli.state import state_of

app = typer.Typer(name="admin", help="Operator tasks.", no_args_is_help=True)


@app.command("rotate-master-key")
def rotate_master_key(
    ctx: typer.Context,
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            metavar="FILE",
            help="The new key (base64 of 32 bytes), needed when the daemon's key comes from "
            "NOVA_MASTER_KEY; without it the daemon generates one into its key file.",
        ),
    ] = None,
) -> None:
    """Re-encrypt every secret under a new master key, all at once."""
    body: dict[str, str] = {}
    if new_key_file is not None:
        try:
            body["new_key"] = new_key_file.read_text().strip()
        except OSError as exc:
            raise UsageProblem(f"cannot read {new_key_file}: {exc.strerror}") from exc
    state = state_of(ctx)
    rotation = state.client.call("POST", "/admin/master-key/rotate", json_body=body)
    if state.json_output:
        state.out.json(rotation)
        return
    count = rotation.get("secrets") if isinstance(rotation, dict) else "?"
    key_id = rotation.get("key_id") if isinstance(rotation, dict) else "?"
    state.out.line(f"re-encrypted {count} secret(s) under master key {key_id}")
