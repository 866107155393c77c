"""``nova dlq``: the dead letters - asynchronous events whose every attempt failed."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nova.cli.commands.fn import confirm
from nova.cli.commands.invocations import fetch, show
from nova.cli.errors import Aborted, UsageProblem
from nova.cli.state import CliState, state_of

app = typer.Typer(
    name="dlq",
    help="Dead letters: list, show, replay or purge failed asynchronous events.",
    no_args_is_help=True,
)

FunctionOpt = Annotated[
    str | None, typer.Option("--function", "-f", metavar="NAME", help="Only this function's.")
]
ErrorOpt = Annotated[
    str | None,
    typer.Option("--error-type", metavar="TYPE", help="Only those whose last error is TYPE."),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every dead letter.")]
IdsArg = Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="Request ids.")]


@app.command("list")
def list_dead(
    ctx: typer.Context,
    function: FunctionOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 100,
) -> None:
    """Dead letters, most recently failed first."""
    from nova.cli.render import fmt_time

    state = state_of(ctx)
    params: dict[str, str | int] = {"limit": limit}
    if function:
        params["function"] = function
    page = state.client.call("GET", "/dead-letters", params=params)
    if state.json_output:
        state.out.json(page)
        return
    items: list[dict[str, Any]] = page.get("items", []) if isinstance(page, dict) else []
    if not items:
        state.out.note("no dead letters")
        return
    rows = []
    for item in items:
        errors = item.get("errors") or [{}]
        last = errors[-1]
        rows.append(
            (
                str(item.get("request_id")),
                str(item.get("function")),
                str(item.get("attempts")),
                str(last.get("type", "-")),
                fmt_time(item.get("finished_at")),
            )
        )
    state.out.table(("ID", "FUNCTION", "ATTEMPTS", "LAST ERROR", "FAILED"), rows)


@app.command("show")
def show_dead(ctx: typer.Context, request_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """One dead letter: its event and every attempt's error."""
    state = state_of(ctx)
    event = fetch(state, request_id)
    if state.json_output:
        state.out.json(event)
        return
    show(state, event)
    state.out.line("event:")
    state.out.pretty_json(event.get("payload"))


@app.command("replay")
def replay(
    ctx: typer.Context,
    ids: IdsArg = None,
    function: FunctionOpt = None,
    error_type: ErrorOpt = None,
    all_: AllOpt = False,
) -> None:
    """Run dead letters again from a fresh attempt count (e.g. after fixing the code)."""
    state = state_of(ctx)
    count = _post(state, "replay", _selection(ids, function, error_type, all_))
    _done(state, {"replayed": count}, f"replayed {count} dead letter(s)")


@app.command("purge")
def purge(
    ctx: typer.Context,
    ids: IdsArg = None,
    function: FunctionOpt = None,
    error_type: ErrorOpt = None,
    all_: AllOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete dead letters for good."""
    state = state_of(ctx)
    selection = _selection(ids, function, error_type, all_)
    if not yes and not confirm("delete the selected dead letters for good?"):
        raise Aborted("nothing purged")
    count = _post(state, "purge", selection)
    _done(state, {"purged": count}, f"purged {count} dead letter(s)")


def _selection(
    ids: list[str] | None, function: str | None, error_type: str | None, all_: bool
) -> dict[str, Any]:
    if not (ids or function or error_type or all_):
        raise UsageProblem("name the dead letters: IDs, --function, --error-type or --all")
    if all_:
        return {"all": True}
    body: dict[str, Any] = {"ids": ids or []}
    if function:
        body["function"] = function
    if error_type:
        body["error_type"] = error_type
    return body


def _post(state: CliState, action: str, body: dict[str, Any]) -> int:
    answer = state.client.call("POST", f"/dead-letters/{action}", json_body=body)
    key = "replayed" if action == "replay" else "purged"
    return int(answer.get(key, 0)) if isinstance(answer, dict) else 0


def _done(state: CliState, data: dict[str, int], text: str) -> None:
    if state.json_output:
        state.out.json(data)
    else:
        state.out.line(text)
