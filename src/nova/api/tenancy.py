"""Which environment a request acts in, and the full names of the functions it names.

A key bound to one environment acts there; a key of every environment (the admin key made on
first start), or any request while authentication is off, picks one with the
``X-Nova-Environment: org/project/env`` header (the CLI's ``--env``) and otherwise acts in the
default environment. A bound key that names another environment gets 404: it must not learn
what exists elsewhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request
from starlette.types import Scope

from nova.api.auth_gate import key_of
from nova.api.errors import SCOPE_ENVIRONMENT
from nova.core.auth import ApiKey
from nova.core.errors import RequestInvalid
from nova.core.names import validate_function_name
from nova.core.tenancy import (
    DEFAULT_ENVIRONMENT,
    Environment,
    EnvironmentNotFound,
    parse_environment,
)

HEADER = b"x-nova-environment"


def environment(scope: Scope) -> Environment:
    """The environment of the request (worked out once, then kept in its ASGI scope)."""
    known: Environment | None = scope.get(SCOPE_ENVIRONMENT)
    if known is None:
        known = scope[SCOPE_ENVIRONMENT] = _resolve(scope)
    return known


def _resolve(scope: Scope) -> Environment:
    asked = _named(scope)
    key = key_of(scope)
    bound = key.environment if key is not None else None
    if bound is None:
        return asked or DEFAULT_ENVIRONMENT
    if asked is not None and asked != bound:
        raise EnvironmentNotFound(asked.path)
    return bound


def _named(scope: Scope) -> Environment | None:
    """The environment the request's header names, if it does."""
    for name, value in scope["headers"]:
        if name == HEADER:
            return parse_environment(value.decode("latin-1"))
    return None


def full_name(request: Request, name: str) -> str:
    """The full name of the function the request calls ``name`` (validated)."""
    return environment(request.scope).full_name(validate_function_name(name))


def full_reference(request: Request, reference: str) -> str:
    """``name[:qualifier]`` with the name made full in the request's environment."""
    name, colon, qualifier = reference.partition(":")
    return full_name(request, name) + colon + qualifier


def here(request: Request, function: str) -> bool:
    """Whether the function (full name) something refers to is in the request's environment:
    routes, schedules and triggers of other environments answer 404."""
    return environment(request.scope).holds(function.partition(":")[0])


def _function_name(request: Request, name: str) -> str:
    return full_name(request, name)


# A route's ``{name}`` path parameter as the function's full name in the request's environment.
FunctionName = Annotated[str, Depends(_function_name)]


def acts_everywhere(scope: Scope) -> bool:
    """Whether the request may act on every environment: its key is not bound to one."""
    key = key_of(scope)
    return key is None or key.environment is None


def sees_key(scope: Scope, key: ApiKey) -> bool:
    """Whether the request may see (and manage) ``key``: a bound key, only its environment's."""
    caller = key_of(scope)
    return caller is None or caller.environment is None or key.environment == caller.environment


def chosen_environment(scope: Scope, asked: str | None) -> Environment | None:
    """The environment a body or query field names — of a key to create, of audit entries to
    list — None meaning every environment. ``asked``: ``org/project/env``, ``*``, or None for
    the request's own when it names one (else every environment)."""
    caller = key_of(scope)
    bound = caller.environment if caller is not None else None
    if asked is None:
        return bound or _named(scope)
    if asked.strip() == "*":
        if bound is not None:
            raise RequestInvalid(
                f"environment: a key bound to {bound} acts in {bound} only; '*' (every "
                "environment) needs a key of every environment, like the first-start admin key"
            )
        return None
    chosen = parse_environment(asked)
    if bound is not None and chosen != bound:
        raise EnvironmentNotFound(chosen.path)
    return chosen
