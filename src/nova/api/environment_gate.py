"""The environment gate: a bare ASGI middleware that settles which environment a request acts
in before any route runs, and refuses one that does not exist.

It sits behind the authentication gate (it needs the request's key) and the rate limiter. The
default environment always exists, so the usual request costs one scan of its headers; another
environment costs the registry's check (``require``), cached there. A refusal is audited like the
authentication gate's and answered in the path's shape (Lambda's on the Lambda API paths).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from nova.api.auth_gate import Refusal, refuse
from nova.api.tenancy import environment
from nova.core.errors import NovaError
from nova.core.tenancy import Environment

# Raises EnvironmentNotFound for an environment that does not exist.
Require = Callable[[Environment], Awaitable[None]]


class EnvironmentGate:
    def __init__(
        self, app: ASGIApp, get_require: Callable[[], Require], on_refused: Refusal | None
    ) -> None:
        """``get_require`` is called at the first request (the lifespan builds the registry)."""
        self._app = app
        self._get_require = get_require
        self._require: Require | None = None
        self._on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            try:
                chosen = environment(scope)
                if not chosen.is_default:
                    if self._require is None:
                        self._require = self._get_require()
                    await self._require(chosen)
            except NovaError as exc:
                await refuse(scope, exc, send, self._on_refused)
                return
        await self._app(scope, receive, send)
