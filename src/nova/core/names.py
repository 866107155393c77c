"""Validation of names that end up in paths, URLs and process arguments."""

from __future__ import annotations

import re

from nova.core.errors import RequestInvalid

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
