"""Which environment a request acts in, and the full names of the functions it names.

A key bound to one environment acts there; a key of every environment (the admin key made on
first start), or any request while authentication is off, picks one with the
``X-Nova-Environment: org/project/env`` header (the CLI's ``--env``) and otherwise acts in the
default environment. A bound key that names another environment gets 404: it must not learn
what exists elsewhere.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Scope

from nova.api.auth_gate import key_of
from nova.api.errors import SCOPE_ENVIRONMENT
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
    asked = None
    for name, value in scope["headers"]:
        if name == HEADER:
            asked = parse_environment(value.decode("latin-1"))
            break
    key = key_of(scope)
    bound = key.environment if key is not None else None
    if bound is None:
        return asked or DEFAULT_ENVIRONMENT
    if asked is not None and asked != bound:
        raise EnvironmentNotFound(asked.path)
    return bound


def full_name(request: Request, name: str) -> str:
    """The full name of the function the request calls ``name`` (validated)."""
    return environment(request.scope).full_name(validate_function_name(name))


def acts_everywhere(scope: Scope) -> bool:
    """Whether the request may act on every environment: its key is not bound to one."""
    key = key_of(scope)
    return key is None or key.environment is None
