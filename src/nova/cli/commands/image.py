"""``nova image``: build runtime images and list them (the daemon builds; this follows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from nova.cli.errors import ApiError, BadResponse
from nova.cli.state import CliState, state_of

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

app = typer.Typer(name="image", help="Build, list and prune runtime images.", no_args_is_help=True)

POLL_INTERVAL_S = 0.5

RuntimeArg = Annotated[
    str, typer.Argument(metavar="RUNTIME", help="The runtime whose image to use: python, node.")
]


def _path(runtime: str, *rest: str) -> str:
    return "/".join(["/images", quote(runtime, safe=""), *rest])


@app.command("build")
def build(
    ctx: typer.Context,
    runtime: RuntimeArg,
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="Build again even if an image of this recipe exists."),
    ] = False,
    vm: Annotated[
        bool,
        typer.Option(
            "--vm",
            help="Also build the microVM's guest kernel, initramfs and rootfs drive (cached).",
        ),
    ] = False,
) -> None:
    """Build the runtime's debian image on the daemon, with a progress bar.

    A second build is a no-op unless --rebuild (which picks up package updates) or --vm.
    Ctrl-C stops following; the daemon goes on building. Exits 9 when the build fails.
    """
    state = state_of(ctx)
    params = {name: "true" for name, wanted in (("rebuild", rebuild), ("vm", vm)) if wanted}
    started = state.client.send("POST", _path(runtime, "build"), params=params or None)
    status = _status(started.json() if started.content else None)
    if started.status_code == 200:  # nothing to do: the image of this recipe exists
        if not state.json_output:
            state.out.note(f"the {runtime} image is up to date (use --rebuild to build again)")
        _show(state, status)
        return
    status = _follow(state, runtime, status)
    if status.get("error"):
        raise ApiError(
            "Image.BuildFailed",
            f"building the {runtime} image failed: {status['error']}",
            502,
        )
    _show(state, status)


def _follow(state: CliState, runtime: str, status: dict[str, Any]) -> dict[str, Any]:
    """Poll GET /images/{runtime} until the build is over, drawing its progress on stderr."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn(f"{runtime} image"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=state.out.err, disable=state.json_output) as bar:
        task = bar.add_task("starting", total=1.0)
        while status.get("state") == "building":
            _draw(bar, task, status)
            state.ports.sleep(POLL_INTERVAL_S)
            status = _status(state.client.call("GET", _path(runtime)))
        _draw(bar, task, status)
    return status


def _draw(bar: Progress, task: TaskID, status: dict[str, Any]) -> None:
    progress = status.get("progress") or {}
    text = str(progress.get("message") or status.get("state", ""))
    if progress.get("total"):
        text += f" ({progress.get('done', 0)}/{progress['total']})"
    bar.update(task, completed=float(progress.get("fraction") or 0.0), description=text)


def _status(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or "state" not in body:
        raise BadResponse("the daemon's image status has no state")
    return body


def _show(state: CliState, status: dict[str, Any]) -> None:
    if state.json_output:
        state.out.json(status)
        return
    from nova.cli.render import fmt_bytes, fmt_time, fmt_value

    image = status.get("image") or {}
    state.out.fields(
        [
            ("runtime", fmt_value(status.get("runtime"))),
            ("image", fmt_value(image.get("id"))),
            ("selected", fmt_value(status.get("selected"))),
            ("size", fmt_bytes(image.get("size_bytes"))),
            ("packages", fmt_value(len(image.get("packages") or {}))),
            ("built", fmt_time(image.get("built_at"))),
            ("build time", f"{image['build_s']:.0f} s" if "build_s" in image else "-"),
            ("microVM", fmt_value(status.get("vm"))),
        ]
    )


@app.command("status")
def status(ctx: typer.Context, runtime: RuntimeArg) -> None:
    """Show the runtime's image and its last build (with the error of a failed one)."""
    state = state_of(ctx)
    body = _status(state.client.call("GET", _path(runtime)))
    if state.json_output:
        state.out.json(body)
        return
    from nova.cli.render import fmt_value

    progress = body.get("progress") or {}
    state.out.fields(
        [
            ("state", fmt_value(body.get("state"))),
            (
                "progress",
                f"{float(progress.get('fraction') or 0):.0%} {progress.get('message', '')}",
            ),
            ("started", fmt_value(body.get("started_at"))),
            ("finished", fmt_value(body.get("finished_at"))),
        ]
    )
    _show(state, body)
    if body.get("error"):
        state.out.note(f"last build failed:\n{body['error']}", style="red")


@app.command("list")
def list_images(ctx: typer.Context) -> None:
    """List runtime images: the host root per runtime and every built debian image."""
    from rich.text import Text

    from nova.cli.render import fmt_bytes, fmt_time, fmt_value

    state = state_of(ctx)
    items = state.client.collect("/images")
    if state.json_output:
        state.out.json({"items": items, "next": None})
        return
    state.out.table(
        ["RUNTIME", "KIND", "ID", "SIZE", "BUILT", "SELECTED", "INSTANCES"],
        (
            [
                fmt_value(item.get("runtime")),
                fmt_value(item.get("kind")),
                fmt_value(item.get("id")),
                fmt_bytes(item.get("size_bytes")),
                fmt_time(item.get("built_at")),
                Text("yes", style="green") if item.get("selected") else "no",
                fmt_value(item.get("instances")),
            ]
            for item in items
        ),
    )


@app.command("prune")
def prune(ctx: typer.Context) -> None:
    """Delete debian images no runtime uses any more (superseded by a rebuild or a recipe
    change) and no instance runs on; the current image of each runtime always stays."""
    from nova.cli.render import fmt_bytes, fmt_time, fmt_value

    state = state_of(ctx)
    body = state.client.call("POST", "/images/prune")
    if not isinstance(body, dict) or not isinstance(body.get("removed"), list):
        raise BadResponse("the daemon's prune reply has no list of removed images")
    if state.json_output:
        state.out.json(body)
        return
    removed = body["removed"]
    if not removed:
        state.out.note("nothing to prune: every image is current or in use")
        return
    state.out.table(
        ["RUNTIME", "ID", "SIZE", "BUILT"],
        (
            [
                fmt_value(item.get("runtime")),
                fmt_value(item.get("id")),
                fmt_bytes(item.get("size_bytes")),
                fmt_time(item.get("built_at")),
            ]
            for item in removed
        ),
    )
    state.out.note(f"freed {fmt_bytes(body.get('freed_bytes'))}")
