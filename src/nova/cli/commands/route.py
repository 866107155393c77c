"""``nova route``: custom HTTP routes (method + path prefix -> function) and function URLs."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from nova.cli.state import CliState, state_of

app = typer.Typer(
    name="route",
    help="HTTP triggers: custom routes (method + path prefix -> function) and function URLs.",
    no_args_is_help=True,
)

AuthOpt = Annotated[
    str,
    typer.Option(
        "--auth",
        help="platform (the platform's credentials, once enabled) or none (anyone: webhooks).",
    ),
]
SecretOpt = Annotated[
    str | None,
    typer.Option(
        "--hmac-secret",
        metavar="SECRET",
        help="Require an HMAC-SHA256 signature with this secret, or $SECRET:name.",
    ),
]
HeaderOpt = Annotated[
    str, typer.Option("--hmac-header", help="The header that carries the signature.")
]
TimestampOpt = Annotated[
    str | None,
    typer.Option(
        "--hmac-timestamp-header",
        metavar="HEADER",
        help="Sign '{timestamp}.{body}' with the Unix time from this header (refuses replays).",
    ),
]
ToleranceOpt = Annotated[
    int, typer.Option("--hmac-tolerance", metavar="SECONDS", help="Allowed clock difference.")
]


def _signature(
    secret: str | None, header: str, timestamp: str | None, tolerance: int
) -> dict[str, Any] | None:
    if secret is None:
        return None
    return {
        "secret": secret,
        "header": header,
        "timestamp_header": timestamp,
        "tolerance_s": tolerance,
    }


@app.command("add")
def add(
    ctx: typer.Context,
    path_prefix: Annotated[str, typer.Argument(metavar="PREFIX", help="e.g. /hooks/github")],
    function: Annotated[str, typer.Argument(metavar="FUNCTION", help="name or name:qualifier")],
    method: Annotated[str, typer.Option("--method", "-X", help="GET, POST, ... or ANY.")] = "ANY",
    auth: AuthOpt = "platform",
    hmac_secret: SecretOpt = None,
    hmac_header: HeaderOpt = "x-signature-256",
    hmac_timestamp_header: TimestampOpt = None,
    hmac_tolerance: ToleranceOpt = 300,
) -> None:
    """Send requests under PREFIX (the longest matching prefix wins) to FUNCTION."""
    state = state_of(ctx)
    body = {
        "method": method,
        "path_prefix": path_prefix,
        "function": function,
        "auth": auth,
        "signature": _signature(hmac_secret, hmac_header, hmac_timestamp_header, hmac_tolerance),
    }
    route = state.client.call("POST", "/routes", json_body=body)
    if state.json_output:
        state.out.json(route)
        return
    state.out.line(f"route {route['id']}: {route['method']} {route['path_prefix']} -> {function}")
    state.out.note(f"try it: curl {state.endpoint}{route['path_prefix']}")


@app.command("list")
def list_routes(ctx: typer.Context) -> None:
    """Every custom route."""
    state = state_of(ctx)
    page = state.client.call("GET", "/routes")
    if state.json_output:
        state.out.json(page)
        return
    items: list[dict[str, Any]] = page.get("items", [])
    if not items:
        state.out.note("no routes; add one with `nova route add PREFIX FUNCTION`")
        return
    rows = [
        (
            str(item["id"]),
            str(item["method"]),
            str(item["path_prefix"]),
            _target(item),
            str(item["auth"]),
            "hmac" if item.get("signature") else "-",
        )
        for item in items
    ]
    state.out.table(("ID", "METHOD", "PREFIX", "FUNCTION", "AUTH", "SIGNATURE"), rows)


@app.command("delete")
def delete(ctx: typer.Context, route_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Delete a route (its generated webhook secret goes with it)."""
    state = state_of(ctx)
    route = state.client.call("DELETE", "/routes/" + quote(route_id, safe=""))
    if state.json_output:
        state.out.json(route)
        return
    state.out.line(f"deleted route {route['method']} {route['path_prefix']}")


@app.command("url")
def url(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(metavar="FUNCTION")],
    auth: Annotated[
        str | None, typer.Option("--auth", help="platform or none; without it: show the URL.")
    ] = None,
    hmac_secret: SecretOpt = None,
    hmac_header: HeaderOpt = "x-signature-256",
    hmac_timestamp_header: TimestampOpt = None,
    hmac_tolerance: ToleranceOpt = 300,
) -> None:
    """Show a function's URL (/fn/NAME/), or set what it requires with --auth."""
    state = state_of(ctx)
    path = f"/functions/{quote(function, safe='')}/url"
    if auth is None and hmac_secret is None:
        config = state.client.call("GET", path)
    else:
        body = {
            "auth": auth or "platform",
            "signature": _signature(
                hmac_secret, hmac_header, hmac_timestamp_header, hmac_tolerance
            ),
        }
        config = state.client.call("PUT", path, json_body=body)
    _show_url(state, config)


def _show_url(state: CliState, config: dict[str, Any]) -> None:
    if state.json_output:
        state.out.json(config)
        return
    signature = config.get("signature")
    state.out.fields(
        [
            ("url", f"{state.endpoint}{config['url']}"),
            ("auth", str(config["auth"])),
            ("signature", f"hmac in {signature['header']}" if signature else "-"),
        ]
    )


def _target(item: dict[str, Any]) -> str:
    qualifier = item.get("qualifier")
    return f"{item['function']}:{qualifier}" if qualifier else str(item["function"])
