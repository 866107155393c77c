"""Start-up and shutdown steps of a running daemon: pre-warming, the ready message, stopping
every service in order."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
from pathlib import Path

from nova.api.context import Services
from nova.config import (
    Settings,
)
from nova.core.errors import NovaError
from nova.examples import EXAMPLE_NAME

logger = logging.getLogger("nova.daemon")


async def prewarm(services: Services) -> None:
    """Start min_replicas instances of every function's $LATEST, and of every version an
    alias routes to, whose config asks for them."""
    cursor: str | None = None
    while True:
        page = await services.store.functions.list(limit=500, cursor=cursor)
        for record in page.items:
            try:
                if record.config.min_replicas > 0:
                    await services.resolver.resolve(record.name)
                for alias in await services.store.aliases.of(record.name):
                    for route in alias.routing:
                        version = await services.store.versions.get(record.name, route.version)
                        if version.config.min_replicas > 0:
                            await services.resolver.resolve(record.name, str(route.version))
            except NovaError as exc:
                logger.warning("cannot pre-warm %s: %s", record.name, exc.message)
        if page.next is None:
            return
        cursor = page.next


async def shutdown(services: Services) -> None:
    timeout_s = services.settings.daemon.shutdown_timeout_s
    # No new messages; those running finish (or go back to their broker unacknowledged).
    await services.triggers.manager.close()
    await services.scheduler.close()  # no new ticks: what it queued runs or waits in the store
    await services.http_routes.close()
    # No new claims; events running finish within the drain below (or keep their leases and
    # run again after the restart).
    await services.async_worker.close(timeout_s)
    if not await services.executor.inflight.drain(timeout_s):
        logger.warning(
            "%d invocation(s) still running after %.0fs; stopping them",
            services.executor.inflight.count,
            timeout_s,
        )
    await services.snapshots.close()
    await services.pools.close()
    await services.sandboxes.close()
    await services.canary.close()
    await services.follower.close()
    if services.verifier is not None:
        await services.verifier.close()  # writes the last uses still held
    await services.log_retention.close()
    await services.environment_concurrency.close()
    await services.log_batcher.close()
    await services.audit.close()  # the refusals still buffered
    await services.counters.close()  # after the drain: the last invocations are counted
    if services.tracer is not None:
        await asyncio.to_thread(services.tracer.shutdown)  # exports the spans still pending
    await services.store.close()
    logger.info("nova stopped")


def announce(settings: Settings, example: bool, elapsed_s: float) -> None:
    host = "127.0.0.1" if settings.daemon.host in ("0.0.0.0", "::") else settings.daemon.host
    url = f"http://{host}:{settings.daemon.port}"
    logger.info(
        "nova ready in %.2fs on %s (data dir %s)",
        elapsed_s,
        url,
        settings.daemon.data_dir.resolve(),
    )
    if not settings.auth.enabled:
        logger.warning(
            "authentication is off (auth.enabled=false): anyone who can reach %s:%d can deploy "
            "and run code here",
            settings.daemon.host,
            settings.daemon.port,
        )
    if example:
        # The command as it was started (e.g. .venv/bin/nova under `make run`), so the hint
        # works even when nova is not on PATH.
        nova = sys.argv[0] if sys.argv[0].endswith("nova") else "nova"
        endpoint = "" if url == "http://127.0.0.1:9000" else f" --endpoint {url}"
        key_file = settings.auth.admin_key_file or settings.daemon.data_dir / "admin-key"
        if key_file != Path(".nova-data/admin-key"):
            endpoint += f" --data-dir {settings.daemon.data_dir}"
        bearer = f'-H "Authorization: Bearer $(cat {key_file})" ' if settings.auth.enabled else ""
        logger.info(
            'try it: curl -s %s-X POST %s/functions/%s/invoke -d \'{"name": "Ada"}\'  or  %s%s invoke %s --data \'{"name": "Ada"}\'',
            bearer,
            url,
            EXAMPLE_NAME,
            nova,
            endpoint,
            EXAMPLE_NAME,
        )


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an address or a name) only listens where this machine can reach it."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
