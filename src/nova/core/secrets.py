"""Secrets as the rest of Nova sees them: names, references in a function's env, errors.

A function refers to a secret by giving an env variable the value ``$SECRET:name`` (the whole
value: ``DB_PASSWORD=$SECRET:db-password``). The reference is what the store, the API and every
record keep; the value replaces it only in the environment an instance starts with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from nova.core.errors import NovaError, RequestInvalid

SECRET_REF_PREFIX = "$SECRET:"
SECRET_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$"
_SECRET_NAME = re.compile(SECRET_NAME_PATTERN)
# A value may be up to 64 KiB, the whole env's limit: a secret must fit in the env it goes to.
MAX_SECRET_BYTES = 64 * 1024


def validate_secret_name(name: str, field: str = "name") -> str:
    if not _SECRET_NAME.fullmatch(name):
        raise RequestInvalid(
            f"{field}: {name[:80]!r} is not a valid secret name; use 1-128 letters, digits, "
            "'_', '-' and '.', starting with a letter"
        )
    return name


def secret_refs(env: Mapping[str, str]) -> dict[str, str]:
    """The env variables that name a secret, as {variable: secret name}."""
    return {
        key: value[len(SECRET_REF_PREFIX) :]
        for key, value in env.items()
        if value.startswith(SECRET_REF_PREFIX)
    }


REDACTED = "[secret]"


def scrub(text: str, values: tuple[str, ...]) -> str:
    """``text`` with every occurrence of the values replaced by ``[secret]`` (values too short
    to be told from ordinary text, under 4 characters, are left: scrubbing them would mangle
    output and hide nothing)."""
    for value in values:
        if len(value) >= 4 and value in text:
            text = text.replace(value, REDACTED)
    return text


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown of a secret: never its value."""

    name: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SealedSecret:
    """A secret as it is stored: AES-256-GCM ciphertext (with its tag) under the master key
    ``key_id`` names, and the nonce it was sealed with."""

    name: str
    ciphertext: bytes
    nonce: bytes
    key_id: str


class SecretNotFound(NovaError):
    code = "Secret.NotFound"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"secret {name!r} does not exist; list them with `nova secret list`")


class SecretMissing(NovaError):
    """An instance cannot start: its env names a secret that is not set. Names only."""

    code = "Function.SecretMissing"
    status = 409

    def __init__(self, function: str, variable: str, secret: str) -> None:
        super().__init__(
            f"function {function!r} cannot start: env {variable} refers to secret {secret!r}, "
            f"which does not exist; set it with `nova secret set {secret}`"
        )


class SecretUnreadable(NovaError):
    """A stored secret cannot be decrypted with the master keys this daemon has."""

    code = "Secret.Unreadable"
    status = 500


class MasterKeyManaged(NovaError):
    """A rotation needs the new key from the operator: the key comes from NOVA_MASTER_KEY."""

    code = "MasterKey.Managed"
    status = 409
