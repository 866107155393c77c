"""The app factory: FastAPI for the control plane, the invoke fast path in front of it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from starlette.types import ASGIApp

from nova import __version__
from nova.api import errors, openapi
from nova.api.context import Services
from nova.api.http_trigger import HttpTriggers
from nova.api.invoke import InvokeFastPath
from nova.api.release_bodies import AliasPut, VersionPublish
from nova.api.routes import (
    audit,
    environments,
    functions,
    http_routes,
    images,
    invocations,
    keys,
    lambda_api,
    log_stream,
    metrics,
    observe,
    releases,
    schedules,
    secrets,
    slo,
    snapshots,
    timeseries,
    triggers,
    vm_snapshots,
)
from nova.api.routes.http_routes import FunctionUrlPut, RouteCreate
from nova.api.routes.invocations import DeadLetterSelection
from nova.api.routes.schedules import ScheduleCreate, SchedulePatch
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
            RouteCreate,
            FunctionUrlPut,
            ScheduleCreate,
            SchedulePatch,
            keys.KeyCreate,
            environments.EnvironmentCreate,
            environments.QuotaChanges,
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
    api.include_router(triggers.router)
    api.include_router(http_routes.router)
    api.include_router(schedules.router)
    api.include_router(keys.router)
    api.include_router(audit.router)
    api.include_router(environments.router)

    def get_services() -> Services:
        result: Services = api.state.services
        return result

    def services_if_built() -> Services | None:
        built: Services | None = getattr(api.state, "services", None)
        return built

    # The invoke fast path matches first, so function URLs and routes cost it nothing.
    routes: ASGIApp = api if around_routes is None else around_routes(api)
    return InvokeFastPath(HttpTriggers(routes, services_if_built), get_services)
