"""README.md's error tables name every error code the API sends and every error type an
invocation result can carry; a new one without documentation fails here."""

from __future__ import annotations

import re
from pathlib import Path

import nova.core.secrets
import nova.images.errors
import nova.pool.connection
import nova.ratelimit.policy
import nova.sandbox.registry
import nova.sandbox.selection  # noqa: F401  (defines NovaErrors of its own)
from nova.agent.errors import ErrorType
from nova.api.errors import _HTTP_CODES
from nova.core.errors import NovaError

README = (Path(__file__).parents[2] / "README.md").read_text()
ERRORS = README[README.index("### Errors") : README.index("## CLI")]
DOCUMENTED = set(re.findall(r"`([A-Z][A-Za-z]*\.[A-Za-z<>]+)`", ERRORS))


def every_error_class(root: type[NovaError]) -> list[type[NovaError]]:
    found = []
    for sub in root.__subclasses__():
        found += [sub, *every_error_class(sub)]
    return found


def test_every_api_error_code_is_documented() -> None:
    codes = {error.code for error in every_error_class(NovaError)}
    codes |= set(_HTTP_CODES.values()) | {"Nova.InternalError", "Http.<status>"}

    assert codes - DOCUMENTED == set()


def test_every_invocation_error_type_is_documented() -> None:
    types = {kind.value for kind in ErrorType} | {"Function.OutOfMemory", "Runtime.Unknown"}

    assert types - DOCUMENTED == set()
