"""SQL conditions that keep a query inside one environment (nova.core.tenancy).

Full names carry their environment as a prefix, so "in this environment" is a prefix match
(served by the name's index) and, for the default environment, "has no prefix at all".
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from nova.core.tenancy import Environment


def in_environment(
    full_name: sa.ColumnElement[Any], environment: Environment
) -> sa.ColumnElement[bool]:
    """``full_name`` (a function's full name, or a column keyed by one) is in ``environment``."""
    if environment.is_default:
        return sa.not_(full_name.contains(".", autoescape=True))
    return full_name.startswith(environment.prefix, autoescape=True)


def secret_in_environment(
    stored: sa.ColumnElement[Any], environment: Environment
) -> sa.ColumnElement[bool]:
    """A stored secret name (``org/project/env/NAME`` outside the default) in ``environment``."""
    if environment.is_default:
        return sa.not_(stored.contains("/", autoescape=True))
    return stored.startswith(environment.path + "/", autoescape=True)
