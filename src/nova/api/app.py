"""The app factory: FastAPI for the control plane, the invoke fast path in front of it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from starlette.types import ASGIApp

from nova import __version__
from nova.api import errors, openapi
from nova.api.context import Services
from nova.api.invoke import InvokeFastPath
from nova.api.release_bodies import AliasPut, VersionPublish
from nova.api.routes import (
    audit,
    functions,
    images,
    invocations,
    keys,
    lambda_api,
    log_stream,
    metrics,
    observe,
    releases,
    secrets,
    slo,
    snapshots,
    timeseries,
    vm_snapshots,
)
from nova.api.routes.invocations import DeadLetterSelection
from nova.api.routes.secrets import MasterKeyRotate, SecretPut
from nova.api.schemas import FunctionCreate, FunctionPatch

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    lifespan: Lifespan, around_routes: Callable[[ASGIApp], ASGIApp] | None = None
) -> ASGIApp:
    """``lifespan`` builds the Services and stores them on ``app.state.services``;
    ``around_routes`` wraps the routes behind the invoke fast path (the audit trail: an
    invoke is no change, so the hot path never passes through it)."""
    api = openapi.documented_app("Nova", __version__, lifespan)
    errors.install(api)
    openapi.install(
        api,
        [
            FunctionCreate,
            FunctionPatch,
            VersionPublish,
            AliasPut,
            DeadLetterSelection,
            SecretPut,
            MasterKeyRotate,
            keys.KeyCreate,
        ],
    )
    api.include_router(openapi.invoke_router)
    api.include_router(functions.router)
    api.include_router(releases.router)
    api.include_router(observe.router)
    api.include_router(metrics.router)
    api.include_router(timeseries.router)
    api.include_router(slo.router)
    api.include_router(images.router)
    api.include_router(log_stream.router)
    api.include_router(invocations.router)
    api.include_router(lambda_api.router)
    api.include_router(secrets.router)
    api.include_router(vm_snapshots.router)
    api.include_router(snapshots.router)
    api.include_router(keys.router)
    api.include_router(audit.router)

    def get_services() -> Services:
        result: Services = api.state.services
        return result

    routes: ASGIApp = api if around_routes is None else around_routes(api)
    return InvokeFastPath(routes, get_services)
