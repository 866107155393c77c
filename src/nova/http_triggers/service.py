"""Custom routes and function URL settings: checked, stored, and held in memory for requests.

Every daemon keeps the routes as a :class:`RouteTable` and the non-default function URL
settings in a dict, read again after each change made here and every ``refresh_s`` for the
changes other daemons made. A webhook secret given in clear is sealed through the secrets
service under a name of its own (``nova-hook-…``, deleted with its route); ``$SECRET:name``
refers to an existing secret instead. Only the reference is stored with the route.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from nova.core.errors import RequestInvalid
from nova.core.periodic import Periodic
from nova.core.secrets import SECRET_REF_PREFIX, validate_secret_name
from nova.core.tenancy import (
    Environment,
    environment_of,
    secret_environment,
    split_full_reference,
    validate_full_name,
)
from nova.core.triggers import (
    FunctionUrlConfig,
    Route,
    RouteSpec,
    SignatureCheck,
    TriggerAuth,
)
from nova.http_triggers.signature import ALGORITHMS
from nova.http_triggers.table import RouteTable, validate_method, validate_prefix
from nova.secrets.service import SecretService
from nova.store.event_source_ports import RouteRepository

logger = logging.getLogger(__name__)

GENERATED_SECRET_PREFIX = "nova-hook-"
MAX_TOLERANCE_S = 86400


@dataclass(frozen=True, slots=True)
class SignatureInput:
    """A signature check as the API receives it: ``secret`` in clear or ``$SECRET:name``."""

    secret: str
    header: str = "x-signature-256"
    algorithm: str = "sha256"
    timestamp_header: str | None = None
    tolerance_s: int = 300


class RouteService:
    def __init__(self, routes: RouteRepository, secrets: SecretService, refresh_s: float) -> None:
        self._routes = routes
        self._secrets = secrets
        self.table = RouteTable()
        self._urls: dict[str, FunctionUrlConfig] = {}
        self._loop = Periodic(
            "nova-route-refresh", refresh_s, self.refresh, logger, "routes not refreshed"
        )

    async def start(self) -> None:
        await self.refresh()
        self._loop.start()

    async def close(self) -> None:
        await self._loop.close()

    async def refresh(self) -> None:
        self.table = RouteTable(await self._routes.all())
        self._urls = {config.function: config for config in await self._routes.urls()}

    def url_config(self, function: str) -> FunctionUrlConfig:
        """What ``/fn/{function}`` requires (the defaults when nothing was set)."""
        return self._urls.get(function) or FunctionUrlConfig(function)

    async def add(
        self,
        method: str,
        path_prefix: str,
        target: str,
        *,
        reserved: Collection[str],
        auth: TriggerAuth = TriggerAuth.PLATFORM,
        signature: SignatureInput | None = None,
    ) -> Route:
        """``RequestInvalid`` naming the field, ``FunctionNotFound``, ``RouteConflict``.
        ``reserved``: the first path segments of Nova's own API, which no route may take."""
        method = validate_method(method)
        validate_prefix(path_prefix, reserved)
        function, qualifier = _target(target)
        check = await self._signature(signature, environment_of(function))
        try:
            route = await self._routes.add(
                method, path_prefix, RouteSpec(function, qualifier, auth, check)
            )
        except BaseException:
            await self._drop_generated(check)
            raise
        await self.refresh()
        return route

    async def list(self) -> list[Route]:
        return await self._routes.all()

    async def delete(self, route_id: str) -> Route:
        route = await self._routes.delete(route_id)
        await self._drop_generated(route.spec.signature)
        await self.refresh()
        return route

    async def set_url(
        self,
        function: str,
        auth: TriggerAuth,
        signature: SignatureInput | None,
    ) -> FunctionUrlConfig:
        validate_full_name(function)
        previous = self.url_config(function).signature
        check = await self._signature(signature, environment_of(function))
        stored = await self._routes.put_url(FunctionUrlConfig(function, auth, check))
        if previous is not None and previous != check:
            await self._drop_generated(previous)
        await self.refresh()
        return stored

    async def secret(self, function: str, check: SignatureCheck) -> bytes:
        """The webhook secret's value (``SecretMissing`` when it was deleted); ``function``:
        the route's, whose environment the secret is in."""
        _, name = secret_environment(check.secret_ref)
        resolved = await self._secrets.resolve(function, {"signature": SECRET_REF_PREFIX + name})
        return resolved["signature"].encode()

    async def _signature(
        self, given: SignatureInput | None, environment: Environment
    ) -> SignatureCheck | None:
        """The check to store; its secret is ``environment``'s (stored under its full name)."""
        if given is None:
            return None
        if given.algorithm not in ALGORITHMS:
            raise RequestInvalid(f"signature.algorithm: use one of {', '.join(ALGORITHMS)}")
        header = given.header.lower()
        if not header or not header.replace("-", "").isalnum():
            raise RequestInvalid(f"signature.header: {given.header[:80]!r} is no header name")
        if given.timestamp_header is not None and not given.timestamp_header:
            raise RequestInvalid("signature.timestamp_header: give a header name or leave it out")
        if not 1 <= given.tolerance_s <= MAX_TOLERANCE_S:
            raise RequestInvalid(f"signature.tolerance_s: use 1 to {MAX_TOLERANCE_S} seconds")
        if given.secret.startswith(SECRET_REF_PREFIX):
            local = validate_secret_name(given.secret[len(SECRET_REF_PREFIX) :], "signature.secret")
            name = environment.secret_name(local)
        elif len(given.secret) < 8:
            raise RequestInvalid("signature.secret: use at least 8 characters (or $SECRET:name)")
        else:
            name = environment.secret_name(f"{GENERATED_SECRET_PREFIX}{uuid.uuid4().hex[:16]}")
            await self._secrets.set(name, given.secret)
        timestamp = given.timestamp_header.lower() if given.timestamp_header else None
        return SignatureCheck(name, header, given.algorithm, timestamp, given.tolerance_s)

    async def _drop_generated(self, check: SignatureCheck | None) -> None:
        if check is not None and secret_environment(check.secret_ref)[1].startswith(
            GENERATED_SECRET_PREFIX
        ):
            await self._secrets.delete(check.secret_ref)


def _target(target: str) -> tuple[str, str]:
    """``name`` or ``name:qualifier``, checked; the qualifier "" for $LATEST."""
    name, qualifier = split_full_reference(target)
    return name, qualifier or ""
