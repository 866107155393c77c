"""Tenancy: organisation -> project -> environment, and a function's full name.

Every function belongs to one environment, written ``org/project/env``. The same name may be
used in two environments, so below the API a function is known by its *full name*: the bare
name in the default environment (``default/default/default``, which a single user never has to
mention), else ``org.project.env.name``. Dots appear in no name segment, so a full name splits
back unambiguously and is still one safe path component (instance ids, cgroups and work
directories are built from it). Pools, logs, metrics and the change log key on the full name;
the API shows each environment its bare names.

Secrets are named per environment the same way, with ``/`` (secret names may hold dots):
``org/project/env/NAME`` outside the default environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nova.core.errors import NovaError, RequestInvalid
from nova.core.names import validate_function_name, validate_qualifier

SEGMENT_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
_SEGMENT = re.compile(SEGMENT_PATTERN)
_SEP = "."
_SECRET_SEP = "/"


@dataclass(frozen=True, slots=True)
class Environment:
    organisation: str
    project: str
    name: str

    @property
    def path(self) -> str:
        """``org/project/env``: how people, headers and URLs write it."""
        return f"{self.organisation}/{self.project}/{self.name}"

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_ENVIRONMENT

    @property
    def prefix(self) -> str:
        """What every full name in this environment starts with ("" in the default one)."""
        if self.is_default:
            return ""
        return f"{self.organisation}{_SEP}{self.project}{_SEP}{self.name}{_SEP}"

    def full_name(self, name: str) -> str:
        """The full name of this environment's function ``name`` (already validated)."""
        return self.prefix + name

    def holds(self, full_name: str) -> bool:
        """Whether the function (or anything keyed by a function) ``full_name`` is here."""
        if self.is_default:
            return _SEP not in full_name
        return full_name.startswith(self.prefix)

    def secret_name(self, name: str) -> str:
        """How the store names this environment's secret ``name``."""
        return name if self.is_default else f"{self.path}{_SECRET_SEP}{name}"

    def holds_secret(self, stored: str) -> bool:
        if self.is_default:
            return _SECRET_SEP not in stored
        return stored.startswith(self.path + _SECRET_SEP)

    def local(self, text: str) -> str:
        """``text`` (an error message, say) with this environment's full names made bare."""
        return text.replace(self.prefix, "") if self.prefix else text

    def __str__(self) -> str:
        return self.path


DEFAULT_ENVIRONMENT = Environment("default", "default", "default")


def parse_environment(text: str) -> Environment:
    """``org/project/env`` -> Environment; a 422 naming the format otherwise."""
    parts = text.strip().split("/")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise RequestInvalid(
            f"environment: {text[:100]!r} is not an environment; write it as "
            "organisation/project/environment, each 1-31 lower-case letters, digits and '-' "
            "starting with a letter (the default one is default/default/default)"
        )
    return Environment(*parts)


def environment_of(full_name: str) -> Environment:
    """The environment a function's full name belongs to."""
    parts = full_name.split(_SEP)
    if len(parts) == 1:
        return DEFAULT_ENVIRONMENT
    return Environment(parts[0], parts[1], parts[2])


def validate_full_name(full_name: str) -> str:
    """``full_name`` if it is a function's full name in some environment, else a 422."""
    parts = full_name.split(_SEP)
    if len(parts) not in (1, 4) or not all(_SEGMENT.fullmatch(part) for part in parts[:-1]):
        raise RequestInvalid(f"name: {full_name[:200]!r} is not a function name")
    validate_function_name(parts[-1])
    return full_name


def split_full_reference(reference: str) -> tuple[str, str | None]:
    """``full_name[:qualifier]`` -> (full name, qualifier or None), both validated."""
    full_name, colon, qualifier = reference.partition(":")
    validate_full_name(full_name)
    return full_name, validate_qualifier(qualifier) if colon else None


def short_name(full_name: str) -> str:
    """A function's name within its environment (what the API shows)."""
    return full_name.rpartition(_SEP)[2]


def secret_environment(stored: str) -> tuple[Environment, str]:
    """A stored secret name -> (its environment, its name there)."""
    parts = stored.split(_SECRET_SEP, 3)
    if len(parts) < 4:
        return DEFAULT_ENVIRONMENT, stored
    return Environment(parts[0], parts[1], parts[2]), parts[3]


class EnvironmentNotFound(NovaError):
    code = "Environment.NotFound"
    status = 404

    def __init__(self, environment: str) -> None:
        super().__init__(
            f"environment {environment!r} does not exist (or this key may not use it); list "
            "them with `nova env list`, create one with `nova env create`"
        )
        self.environment = environment


class EnvironmentExists(NovaError):
    code = "Environment.AlreadyExists"
    status = 409

    def __init__(self, environment: str) -> None:
        super().__init__(f"environment {environment!r} already exists; see `nova env list`")


class EnvironmentNotEmpty(NovaError):
    code = "Environment.NotEmpty"
    status = 409

    def __init__(self, environment: str, functions: int, secrets: int) -> None:
        super().__init__(
            f"environment {environment!r} still holds {functions} function(s) and {secrets} "
            "secret(s); delete them first (`nova --env "
            f"{environment} fn list`, `nova --env {environment} secret list`)"
        )


class EnvironmentProtected(NovaError):
    code = "Environment.Protected"
    status = 409

    def __init__(self) -> None:
        super().__init__(
            f"the default environment {DEFAULT_ENVIRONMENT.path} cannot be deleted (requests "
            "that name no environment act in it)"
        )
