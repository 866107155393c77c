"""Running the daemon: settings -> the app and its gates -> uvicorn, and the lifespan that
starts and stops the services."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from nova.api.app import create_app
from nova.api.audit_trail import AuditTrail, refusal_recorder
from nova.api.context import Services
from nova.api.environment_gate import EnvironmentGate
from nova.auth.audit import AuditLog
from nova.config import (
    ConfigFileError,
    Settings,
    load_settings,
)
from nova.core.errors import ConfigInvalid, DaemonStartFailed
from nova.daemon.components import runtime_images
from nova.daemon.gates import (
    admin_key_file,
    authenticated,
    check_exposure,
    rate_limited,
    show_admin_key,
)
from nova.daemon.lifecycle import announce, prewarm, shutdown
from nova.daemon.services import build_services
from nova.examples import ensure_example
from nova.observability.logging import configure_logging
from nova.server import DrainingServer


def run_daemon(config_file: Path | None, overrides: dict[str, Any], deploy_example: bool) -> None:
    """Run until signalled and return after a clean shutdown.

    Raises ConfigInvalid when the settings are wrong and DaemonStartFailed when the daemon
    could not start serving (the log above says why); the CLI maps them to exit codes.
    """
    try:
        settings = load_settings(config_file, overrides)
    except (ConfigFileError, ValidationError) as exc:
        raise ConfigInvalid(f"invalid configuration: {exc}") from exc
    configure_logging(settings.logging.level, settings.logging.format)
    check_exposure(settings)
    settings.daemon.data_dir.mkdir(parents=True, exist_ok=True)
    built: list[Services] = []  # filled by the lifespan once the services exist
    closers: list[Callable[[], Awaitable[None]]] = []  # what the lifespan closes at the end

    def audit() -> AuditLog:
        return built[0].audit

    app = create_app(
        lambda api: _lifespan(api, settings, deploy_example, built, closers),
        lambda routes: AuditTrail(routes, audit),
    )
    app = EnvironmentGate(app, lambda: built[0].environments.require, refusal_recorder(audit))
    app = rate_limited(app, settings.rate_limits, closers)
    app = authenticated(app, settings, built, refusal_recorder(audit))

    async def drain(timeout_s: float) -> bool:
        return await built[0].executor.inflight.drain(timeout_s) if built else True

    server = DrainingServer(
        uvicorn.Config(
            app,
            host=settings.daemon.host,
            port=settings.daemon.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_config=None,
            access_log=False,
            # Nova uses no client address, so X-Forwarded-* rewriting is pure per-request cost.
            proxy_headers=False,
            timeout_graceful_shutdown=int(settings.daemon.shutdown_timeout_s),
        ),
        drain,
        settings.daemon.shutdown_timeout_s,
    )
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 3 when it cannot bind or the lifespan fails
        raise DaemonStartFailed(_START_FAILED) from exc
    if not server.started:
        raise DaemonStartFailed(_START_FAILED)


_START_FAILED = "the daemon did not start; the log lines above say why"


@asynccontextmanager
async def _lifespan(
    api: FastAPI,
    settings: Settings,
    deploy_example: bool,
    built: list[Services],
    closers: list[Callable[[], Awaitable[None]]],
) -> AsyncIterator[None]:
    started_at = time.monotonic()
    services = await build_services(settings)
    api.state.services = services
    built.append(services)
    api.state.images = images = runtime_images(settings, services)
    try:
        await services.log_batcher.start()
        services.log_retention.start()
        services.environment_concurrency.start()
        await services.secrets.start()  # finishes a master-key rotation left half done
        if services.verifier is not None:
            admin_key = await services.keys.bootstrap(admin_key_file(settings))
            if admin_key is not None:
                show_admin_key(admin_key, admin_key_file(settings))
            await services.verifier.start()
        await services.follower.start()
        await services.triggers.manager.reconcile()
        services.audit.start()
        services.canary.start()
        services.counters.start()
        services.pools.start_background()
        services.async_worker.start()
        await services.http_routes.start()
        if settings.schedules.enabled:
            services.scheduler.start()
        await prewarm(services)
        if deploy_example:
            await ensure_example(services.functions)
        services.started = True
        announce(settings, deploy_example, time.monotonic() - started_at)
        yield
    finally:
        await images.close()  # stops image builds still running
        await shutdown(services)
        for close in closers:
            await close()
