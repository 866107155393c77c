"""``nova health``: is the daemon up, and what does it say about its parts?"""

from __future__ import annotations

from typing import Any

import typer

from nova.cli.errors import ApiError
from nova.cli.state import state_of


def health(ctx: typer.Context) -> None:
    """Ask the daemon for its health (exits 9 when it reports itself unhealthy)."""
    from nova.cli.client import api_error, decode

    state = state_of(ctx)
    response = state.client.send("GET", "/health", check=False)
    body: Any = None
    if response.content:
        try:
            body = response.json()
        except ValueError:
            body = None
    if not response.is_success and (not isinstance(body, dict) or "error" in body):
        raise api_error(response)  # not a health report: an ordinary API error
    body = decode(response)
    if state.json_output:
        state.out.json(body)
    else:
        state.out.fields(flatten(body if isinstance(body, dict) else {"status": body}))
    if not response.is_success:
        status = body.get("status", "unhealthy") if isinstance(body, dict) else "unhealthy"
        raise ApiError(
            "Daemon.Unhealthy",
            f"the daemon reports itself {status} (HTTP {response.status_code})",
            response.status_code,
        )


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``{"checks": {"store": "ok"}}`` → ``[("checks.store", "ok")]``."""
    from nova.cli.render import fmt_value

    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            rows.extend(flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", fmt_value(value)))
    return rows
