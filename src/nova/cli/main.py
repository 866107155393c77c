"""The ``nova`` entry point: the Typer app, the global options and the one error boundary.

Command modules are imported here but import nothing heavy themselves (httpx and Rich load when a
command runs), so ``nova --help`` only pays for Typer.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from nova.cli.commands import (
    admin,
    alias,
    audit,
    daemon,
    dlq,
    env,
    fn,
    health,
    image,
    invocations,
    invoke,
    key,
    logs,
    route,
    runtimes,
    schedule,
    secret,
    slo,
    snapshot,
    stats,
    trigger,
    version,
    vm_snapshot,
)
from nova.cli.errors import Aborted, CliError
from nova.cli.exit_codes import ExitCode, exit_code_for
from nova.cli.state import (
    DEFAULT_DATA_DIR,
    DEFAULT_ENDPOINT,
    DEFAULT_TIMEOUT_S,
    INVOKE_WAIT_S,
    CliState,
    Ports,
    normalize_endpoint,
)
from nova.core.errors import NovaError

if TYPE_CHECKING:
    from typer._click import Context as ClickContext


class NovaGroup(TyperGroup):
    """The root group; its ``invoke`` is the only place a failure becomes an exit status."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.TyperException):  # the parser's usage errors: exit 2
            raise
        except BrokenPipeError as exc:
            _silence_stdout()
            raise typer.Exit(exit_code_for(exc)) from exc
        except typer.Abort as exc:  # a prompt's input ended or was interrupted
            raise typer.Exit(report(Aborted("aborted"), debug=False)) from exc
        except (Exception, KeyboardInterrupt) as exc:
            state = ctx.obj
            debug = isinstance(state, CliState) and state.debug
            raise typer.Exit(report(exc, debug=debug)) from exc


def _silence_stdout() -> None:
    """The reader of stdout went away (``| head``): point fd 1 at /dev/null, so the flush at
    exit cannot fail a second time and print a traceback."""
    with contextlib.suppress(OSError, ValueError):  # not a real fd (tests) or already gone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def report(exc: BaseException, *, debug: bool) -> ExitCode:
    """Print ``error: <message>`` (+ hint, + detail) to stderr; return the exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    hint: str | None = None
    detail: str | None = None
    if isinstance(exc, CliError):
        message, hint, detail = exc.message, exc.hint, exc.detail
    elif isinstance(exc, NovaError):
        message = exc.message
    elif isinstance(exc, KeyboardInterrupt):
        message = "interrupted"
    else:
        message = f"unexpected {type(exc).__name__}: {exc}"
        hint = None if debug else "run again with `nova --debug ...` to see the traceback"
    typer.secho("error:", fg="red", bold=True, err=True, nl=False)
    typer.echo(f" {message}", err=True)
    if hint:
        typer.secho("hint:", fg="yellow", err=True, nl=False)
        typer.echo(f" {hint}", err=True)
    if detail:
        typer.echo(detail.rstrip("\n"), err=True)
    return exit_code_for(exc)


app = typer.Typer(
    cls=NovaGroup,
    name="nova",
    help="Nova: a self-hosted serverless function platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"nova {version('nova')}")
        except PackageNotFoundError:
            typer.echo("nova (not installed)")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    endpoint: Annotated[
        str,
        typer.Option(envvar="NOVA_ENDPOINT", metavar="URL", help="The Nova daemon's address."),
    ] = DEFAULT_ENDPOINT,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print the API's JSON to stdout (for scripts), nothing else."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show HTTP requests and tracebacks on stderr.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.1,
            metavar="SECONDS",
            help="HTTP timeout per request (invoke: how long to wait for the answer).",
            show_default=f"{DEFAULT_TIMEOUT_S:g}; invoke waits {INVOKE_WAIT_S:g}",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="NOVA_API_KEY",
            metavar="KEY",
            help="The API key to send (default: the admin key in the data dir).",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            envvar="NOVA_DATA_DIR",
            file_okay=False,
            metavar="PATH",
            help="The daemon's data dir, whose admin-key file the CLI reads by default.",
        ),
    ] = DEFAULT_DATA_DIR,
    environment: Annotated[
        str | None,
        typer.Option(
            "--env",
            envvar="NOVA_ENV",
            metavar="ORG/PROJECT/ENV",
            help="The environment to act in (default: the key's own, else "
            "default/default/default).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version."),
    ] = False,
) -> None:
    ports = ctx.obj if isinstance(ctx.obj, Ports) else Ports()
    state = CliState(
        endpoint=normalize_endpoint(endpoint),
        json_output=json_output,
        debug=debug,
        timeout_s=timeout,
        ports=ports,
        api_key=api_key,
        data_dir=data_dir,
        environment=environment,
    )
    ctx.obj = state
    ctx.call_on_close(state.close)


app.command("daemon", help=daemon.HELP)(daemon.daemon)
app.add_typer(fn.app, name="fn")
app.add_typer(image.app, name="image")
app.add_typer(version.app, name="version")
app.add_typer(alias.app, name="alias")
app.add_typer(secret.app, name="secret")
app.add_typer(snapshot.app, name="snapshot")
app.add_typer(admin.app, name="admin")
app.add_typer(key.app, name="key")
app.add_typer(env.app, name="env")
app.command("invoke")(invoke.invoke)
app.add_typer(invocations.app, name="invocations")
app.add_typer(dlq.app, name="dlq")
app.add_typer(trigger.app, name="trigger")
app.add_typer(route.app, name="route")
app.add_typer(schedule.app, name="schedule")
app.add_typer(vm_snapshot.app, name="vm-snapshot")
app.command("logs")(logs.logs)
app.command("runtimes")(runtimes.runtimes)
app.command("health")(health.health)
app.command("stats")(stats.stats)
app.command("slo")(slo.slo)
app.command("audit")(audit.audit)


def run() -> None:
    """Console-script entry point (``nova = "nova.cli.main:run"``)."""
    app()
