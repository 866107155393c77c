"""``nova daemon``: start the Nova daemon in the foreground.

Contract with :mod:`nova.daemon` (imported only when this command runs)::

    run_daemon(config_file: Path | None, overrides: dict[str, Any], deploy_example: bool) -> None

``overrides`` is nested like the settings model and holds only the flags actually given, so
that a value from the environment or the config file is never masked by a CLI default
(precedence: flags > NOVA_* environment > config file > defaults). It returns after a clean
shutdown and raises ``nova.core.errors.ConfigInvalid`` (bad settings) or ``DaemonStartFailed``
(it could not start serving); :mod:`nova.cli.exit_codes` maps them like every other failure.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol, cast

import typer

from nova.cli.errors import DaemonFailed

HELP = """Run the Nova daemon in the foreground (Ctrl-C drains and stops it).

Flags override NOVA_* environment variables, which override the --config file."""


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SandboxBackendName(StrEnum):
    AUTO = "auto"
    CONTAINER = "container"
    GVISOR = "gvisor"
    MICROVM = "microvm"
    PROCESS = "process"


class RunDaemon(Protocol):
    def __call__(
        self, *, config_file: Path | None, overrides: dict[str, Any], deploy_example: bool
    ) -> None: ...


def daemon(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on.", show_default="0.0.0.0")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="HTTP port.", show_default="9000")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            file_okay=False,
            metavar="PATH",
            help="Where code, the SQLite store and snapshots live.",
            show_default=".nova-data",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            exists=True,
            dir_okay=False,
            metavar="FILE",
            help="A YAML or JSON settings file (sections daemon, pool, store, logging, ...).",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="SQLAlchemy URL, e.g. postgresql+asyncpg://...",
            show_default="SQLite in --data-dir",
        ),
    ] = None,
    log_level: Annotated[
        LogLevel | None, typer.Option(help="Log level.", show_default="info")
    ] = None,
    log_format: Annotated[
        LogFormat | None, typer.Option(help="Log line format.", show_default="text")
    ] = None,
    shutdown_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="How long to drain in-flight requests on shutdown.",
            show_default="30",
        ),
    ] = None,
    backend: Annotated[
        SandboxBackendName | None,
        typer.Option(
            help="Sandbox backend; auto picks the strongest this host supports.",
            show_default="auto",
        ),
    ] = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev", help="Development mode: allow the process backend, which isolates nothing."
        ),
    ] = False,
    example: Annotated[
        bool, typer.Option("--example", help="Deploy an example function at startup.")
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow auth.enabled=false on an address beyond loopback (anyone reaching it "
            "may deploy and run code).",
        ),
    ] = False,
) -> None:
    overrides = daemon_overrides(
        host=host,
        port=port,
        data_dir=data_dir,
        shutdown_timeout_s=shutdown_timeout,
        database_url=database_url,
        log_level=log_level,
        log_format=log_format,
        backend=backend,
        dev=dev,
        insecure=insecure,
    )
    run_daemon = _load_run_daemon()
    run_daemon(config_file=config, overrides=overrides, deploy_example=example)


def daemon_overrides(
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: Path | None = None,
    shutdown_timeout_s: float | None = None,
    database_url: str | None = None,
    log_level: LogLevel | None = None,
    log_format: LogFormat | None = None,
    backend: SandboxBackendName | None = None,
    dev: bool = False,
    insecure: bool = False,
) -> dict[str, Any]:
    """The nested settings overrides for the flags that were given (``None`` = not given)."""
    sections: dict[str, dict[str, Any]] = {
        "daemon": {
            "host": host,
            "port": port,
            "data_dir": data_dir,
            "shutdown_timeout_s": shutdown_timeout_s,
            "insecure": True if insecure else None,
        },
        "store": {"database_url": database_url},
        "sandbox": {
            "backend": backend.value if backend else None,
            "allow_process_backend": True if dev else None,
        },
        "logging": {
            "level": log_level.value if log_level else None,
            "format": log_format.value if log_format else None,
        },
    }
    overrides: dict[str, Any] = {}
    for section, values in sections.items():
        given = {key: value for key, value in values.items() if value is not None}
        if given:
            overrides[section] = given
    return overrides


def _load_run_daemon() -> RunDaemon:
    try:
        module = importlib.import_module("nova.daemon")
    except ImportError as exc:
        raise DaemonFailed(f"cannot load the daemon: {exc}") from exc
    run_daemon = getattr(module, "run_daemon", None)
    if not callable(run_daemon):
        raise DaemonFailed("cannot load the daemon: nova.daemon has no run_daemon()")
    return cast(RunDaemon, run_daemon)
