"""What stands in front of the routes: rate limits, the authentication gate, the refusal to
listen beyond loopback without auth, and the admin key shown once."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.types import ASGIApp, Scope

from nova.api.auth_gate import AuthGate, Refusal
from nova.api.context import Services
from nova.api.http_trigger import is_trigger_request
from nova.api.rate_limit import RateLimitGate
from nova.auth.permissions import PublicPaths
from nova.auth.verifier import KeyVerifier
from nova.config import (
    RateLimitSettings,
    Settings,
)
from nova.core.errors import ConfigInvalid
from nova.daemon.components import jwt_verifier
from nova.daemon.lifecycle import is_loopback_host
from nova.ratelimit.buckets import MemoryBuckets, SharedBuckets, Tier
from nova.ratelimit.policy import RatePolicy

logger = logging.getLogger("nova.daemon")


def rate_limited(
    app: ASGIApp, limits: RateLimitSettings, closers: list[Callable[[], Awaitable[None]]]
) -> ASGIApp:
    """``app`` behind the rate-limit gate when limits are on (else ``app`` itself: no cost),
    with buckets in Redis when a URL is configured, else in this daemon's memory."""
    if not limits.enabled:
        return app
    tiers = {name: Tier(name, tier.rps, tier.burst) for name, tier in limits.tiers.items()}
    policy = RatePolicy(tiers, limits.default_tier, limits.keys, limits.functions)
    url = limits.redis_url.get_secret_value()
    buckets: MemoryBuckets | SharedBuckets = MemoryBuckets()
    if url:
        from nova.ratelimit.redis_buckets import RedisBuckets  # redis only when configured

        buckets = RedisBuckets(url, limits.redis_prefix)
        closers.append(buckets.close)
    logger.info(
        "rate limits on: %d tier(s), buckets %s",
        len(tiers),
        "in Redis (shared by daemons with the same prefix)" if url else "in memory",
    )
    return RateLimitGate(app, policy, buckets)


def authenticated(
    app: ASGIApp, settings: Settings, built: list[Services], refused: Refusal
) -> ASGIApp:
    """``app`` behind the authentication gate (unless auth is off), whose verifier the
    lifespan builds: no request is served before it has."""
    if not settings.auth.enabled:
        return app

    def verifier() -> KeyVerifier:
        key_verifier = built[0].verifier
        if key_verifier is None:  # cannot happen: auth on builds one
            raise TypeError("authentication is on but no verifier was built")
        return key_verifier

    public = PublicPaths(settings.auth.public_paths)
    tokens = jwt_verifier(settings.auth.jwt)

    def is_trigger(scope: Scope) -> bool:
        return is_trigger_request(built[0] if built else None, scope)

    return AuthGate(
        app, verifier, public, refused, tokens, settings.daemon.max_payload_bytes, is_trigger
    )


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without authentication beyond loopback unless told it is on purpose."""
    daemon = settings.daemon
    if settings.auth.enabled or daemon.insecure or is_loopback_host(daemon.host):
        return
    raise ConfigInvalid(
        f"authentication is off (auth.enabled=false) and the API would listen on {daemon.host}: "
        "anyone reaching it could deploy and run code; listen on 127.0.0.1 (--host), turn "
        "authentication on, or pass --insecure (NOVA_DAEMON__INSECURE=true) if this network is "
        "trusted"
    )


def admin_key_file(settings: Settings) -> Path:
    return settings.auth.admin_key_file or settings.daemon.data_dir.resolve() / "admin-key"


def show_admin_key(key: str, path: Path) -> None:
    """Print the new admin key to the terminal, once (never to the log)."""
    sys.stderr.write(
        "\n  Nova created its admin API key (shown this once; also in "
        f"{path}, mode 0600):\n\n    {key}\n\n"
        f'  curl -H "Authorization: Bearer $(cat {path})" ...   the nova CLI on this host '
        "reads it by itself\n\n"
    )
    sys.stderr.flush()
