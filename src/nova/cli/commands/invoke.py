"""``nova invoke``: call a function synchronously and show what it returned."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nova.cli.errors import BadResponse, FunctionFailed, UsageProblem
from nova.cli.state import CliState, state_of


def invoke(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="Function name (later also name:version or name:alias)."
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            metavar="JSON|@FILE|-",
            help="The event: inline JSON, @file.json, or - for stdin.",
            show_default="{}",
        ),
    ] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Print only the output, as compact JSON.")
    ] = False,
    run_async: Annotated[
        bool,
        typer.Option(
            "--async",
            help="Queue the event and print its request id at once (nova invocations get ID).",
        ),
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", metavar="KEY", help="With --async: a repeat runs once."),
    ] = None,
) -> None:
    """Invoke a function and print its output.

    Waits as long as a function may run (--timeout shortens it); on a terminal, a call that
    takes a while shows a spinner and the time elapsed on stderr. Exits 8 when the function
    raised (its error goes to stderr).
    """
    from nova.cli.client import decode, function_path

    state = state_of(ctx)
    payload = read_event(data)
    if run_async:
        submit_event(state, name, payload, idempotency_key)
        return
    if idempotency_key is not None:
        raise UsageProblem("--idempotency-key applies to --async invocations only")
    response = state.out.waiting(
        f"waiting for {name}",
        lambda: state.client.send(
            "POST",
            function_path(name, "invoke"),
            content=payload,
            headers={"Content-Type": "application/json"},
            timeout=state.invoke_timeout(),
        ),
    )
    result = decode(response)
    if not isinstance(result, dict) or "output" not in result:
        raise BadResponse(f"invoke of {name!r} returned no {{request_id, output, ...}} result")
    error = result.get("error")
    out = state.out
    if state.json_output:
        out.json(result)
    elif raw:
        if not error:
            out.json(result["output"], indent=None)
    else:
        if not error or result["output"] is not None:
            out.pretty_json(result["output"])
        out.note(summary(result))
    if error:
        raise function_failed(error, with_stack=not state.json_output)


def submit_event(state: CliState, name: str, payload: bytes, key: str | None) -> None:
    """POST the event with X-Nova-Invocation-Type: Event; print the request id (202)."""
    from nova.cli.client import function_path

    headers = {"Content-Type": "application/json", "X-Nova-Invocation-Type": "Event"}
    if key is not None:
        headers["Idempotency-Key"] = key
    answer = state.client.call(
        "POST", function_path(name, "invoke"), content=payload, headers=headers
    )
    if not isinstance(answer, dict) or "request_id" not in answer:
        raise BadResponse(f"the async invoke of {name!r} returned no request id")
    if state.json_output:
        state.out.json(answer)
    else:
        state.out.line(str(answer["request_id"]))
        state.out.note(f"queued; follow it with: nova invocations get {answer['request_id']}")


def read_event(data: str | None) -> bytes:
    """The request body: ``data`` as given (validated as JSON, never re-encoded)."""
    if data is None:
        return b"{}"
    if data == "-":
        payload = sys.stdin.read().encode()
        source = "stdin"
    elif data.startswith("@"):
        path = Path(data[1:])
        try:
            payload = path.read_bytes()
        except OSError as exc:
            raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from exc
        source = str(path)
    else:
        payload = data.encode()
        source = "--data"
    try:
        json.loads(payload)
    except ValueError as exc:
        raise UsageProblem(f"{source} is not valid JSON: {exc}") from exc
    return payload


def summary(result: dict[str, Any]) -> str:
    """``request_id · handler 12.3 ms · total 14.1 ms · cold · version``."""
    from nova.cli.render import fmt_ms

    start = result.get("start") or ("cold" if result.get("cold_start") else "warm")
    return " · ".join(
        [
            str(result.get("request_id") or "-"),
            f"handler {fmt_ms(result.get('duration_ms'))}",
            f"total {fmt_ms(result.get('total_ms'))}",
            start,
            str(result.get("version") or "-"),
        ]
    )


def function_failed(error: Any, *, with_stack: bool) -> FunctionFailed:
    if not isinstance(error, dict):
        return FunctionFailed(f"the function failed: {error}")
    kind = error.get("type") or "Error"
    message = error.get("message") or ""
    stack = error.get("stack") if with_stack else None
    if isinstance(stack, list):
        stack = "".join(str(line) for line in stack)
    return FunctionFailed(
        f"{kind}: {message}" if message else str(kind),
        detail=str(stack) if stack else None,
    )
