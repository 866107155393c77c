"""API key tokens and their keyed hash.

A token is ``nova_<id>_<secret>``: the id names the key (it is what lists and logs show, and an
access key id for AWS-style signing), the secret is 32 random bytes. The store keeps only
HMAC-SHA256(pepper, token): a leaked database reveals no usable key, and verifying a request
costs one HMAC and a dict lookup (bcrypt-style slow hashes would cost milliseconds per request;
the tokens are random, so nothing is gained from slowness).

The pepper is ``auth.pepper`` (``NOVA_AUTH__PEPPER``) when set, else ``<data dir>/auth-pepper``,
created with mode 0600 on first start. Daemons that share a store must share the pepper.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "nova_"
_ID_BYTES = 10
_SECRET_BYTES = 32
_BLOCK = 64  # SHA-256's block size: HMAC pads (or first hashes) the key to it


def new_token() -> tuple[str, str, str]:
    """A fresh ``(key id, secret, token)``: the token is ``nova_<id>_<secret>``."""
    key_id = "NK" + base64.b32encode(secrets.token_bytes(_ID_BYTES)).decode().rstrip("=")
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return key_id, secret, f"{PREFIX}{key_id}_{secret}"


def token_hash(pepper: bytes, token: bytes) -> bytes:
    """The keyed hash the store keeps and the verifier looks keys up by."""
    return hmac.digest(pepper, token, "sha256")


class TokenHasher:
    """:func:`token_hash` for one pepper, with HMAC's two padded-key states hashed once: per
    token only the token and the inner digest are hashed (~0.8 µs instead of ~2.5 µs for
    ``hmac.digest``, which redoes the key schedule on every call)."""

    def __init__(self, pepper: bytes) -> None:
        key = pepper if len(pepper) <= _BLOCK else hashlib.sha256(pepper).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))

    def __call__(self, token: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(token)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def load_pepper(configured: str | None, pepper_file: Path) -> bytes:
    """``configured`` when set, else the file's bytes (created with 32 random ones, mode 0600)."""
    if configured:
        if len(configured) < 16:
            raise ValueError("auth.pepper must be at least 16 characters")
        return configured.encode()
    if not pepper_file.exists():
        pepper_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(pepper_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
            file.flush()
            os.fsync(file.fileno())
        logger.info("created the API-key pepper in %s (mode 0600); back it up", pepper_file)
    mode = pepper_file.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("%s is readable by others: chmod 600 it", pepper_file)
    value = pepper_file.read_text().strip()
    if len(value) < 16:
        raise ValueError(f"{pepper_file} holds no pepper (at least 16 characters)")
    return value.encode()


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (replacing any earlier file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text + "\n")
        file.flush()
        os.fsync(file.fileno())
