"""Validation of names that end up in paths, URLs and process arguments."""

from __future__ import annotations

import re

from nova.core.errors import RequestInvalid
from nova.core.models import LATEST_VERSION

FUNCTION_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
_FUNCTION_NAME = re.compile(FUNCTION_NAME_PATTERN)


def validate_function_name(name: str) -> str:
    """Return ``name`` if it is a legal function name, else raise :class:`RequestInvalid`.

    The pattern excludes separators, dots and upper case, so a name is always a safe single path
    component and a DNS label.
    """
    if not _FUNCTION_NAME.fullmatch(name):
        raise RequestInvalid(
            f"name: {name!r} is not a valid function name; use 1-63 characters of lower-case "
            "letters, digits and '-', starting with a letter"
        )
    return name


ALIAS_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
_ALIAS_NAME = re.compile(ALIAS_NAME_PATTERN)
_VERSION_NUMBER = re.compile(r"^[1-9][0-9]{0,8}$")


def validate_alias_name(alias: str, field: str = "alias") -> str:
    """An alias name: lower-case letters, digits, '-' and '_', starting with a letter, so it
    never looks like a version number or ``$LATEST``."""
    if alias == LATEST_VERSION or _VERSION_NUMBER.fullmatch(alias):
        raise RequestInvalid(
            f"{field}: {alias!r} cannot be an alias name: numbers name versions and $LATEST "
            "the unpublished code; choose a name such as 'prod' or 'canary'"
        )
    if not _ALIAS_NAME.fullmatch(alias):
        raise RequestInvalid(
            f"{field}: {alias!r} is not a valid alias name; use 1-64 characters of lower-case "
            "letters, digits, '-' and '_', starting with a letter"
        )
    return alias


def version_number(text: str) -> int | None:
    """The number of a qualifier that names a version ("3" -> 3), else None."""
    return int(text) if _VERSION_NUMBER.fullmatch(text) else None


def split_reference(reference: str) -> tuple[str, str | None]:
    """``name[:qualifier]`` -> (name, qualifier or None), both validated. The qualifier is a
    version number, an alias, or ``$LATEST``."""
    name, colon, qualifier = reference.partition(":")
    validate_function_name(name)
    if not colon:
        return name, None
    return name, validate_qualifier(qualifier)


def validate_qualifier(qualifier: str) -> str:
    if qualifier == LATEST_VERSION or version_number(qualifier) is not None:
        return qualifier
    try:
        return validate_alias_name(qualifier, "qualifier")
    except RequestInvalid:
        raise RequestInvalid(
            f"qualifier: {qualifier!r} is neither a version number, an alias name nor $LATEST"
        ) from None
