"""AES-256-GCM sealing of secret values under a master key, and the keys a daemon holds.

Each value gets a fresh 96-bit random nonce; the secret's name is the associated data, so a
ciphertext copied onto another secret's row does not decrypt. The key id stored with each row is
a hash of the key (not the key): it says which key sealed a row, so a daemon that holds the old
and the new key during a rotation opens both, and one with the wrong key says so instead of
failing on the tag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nova.core.secrets import SealedSecret, SecretUnreadable

KEY_BYTES = 32
NONCE_BYTES = 12


class MasterKey:
    """A 256-bit key. Its repr never shows the key."""

    __slots__ = ("_aead", "key_id", "material")

    def __init__(self, material: bytes) -> None:
        if len(material) != KEY_BYTES:
            raise ValueError(f"a master key has {KEY_BYTES} bytes, not {len(material)}")
        self.material = material
        self.key_id = hashlib.sha256(b"nova-master-key\0" + material).hexdigest()[:16]
        self._aead = AESGCM(material)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(AESGCM.generate_key(bit_length=256))

    @classmethod
    def parse(cls, text: str) -> MasterKey:
        """A key as written in NOVA_MASTER_KEY or the key file: base64 (standard or URL-safe)
        of 32 bytes, or 64 hex digits. The error never quotes the text."""
        text = text.strip()
        try:
            if len(text) == 2 * KEY_BYTES and all(c in "0123456789abcdefABCDEF" for c in text):
                return cls(bytes.fromhex(text))
            padded = text + "=" * (-len(text) % 4)
            return cls(base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True))
        except (ValueError, binascii.Error):
            raise ValueError(
                f"a master key is base64 of {KEY_BYTES} random bytes (e.g. `openssl rand "
                "-base64 32`) or 64 hex digits"
            ) from None

    def encoded(self) -> str:
        return base64.b64encode(self.material).decode()

    def seal(self, name: str, value: str) -> SealedSecret:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, value.encode(), name.encode())
        return SealedSecret(name, ciphertext, nonce, self.key_id)

    def open(self, sealed: SealedSecret) -> str:
        try:
            plain = self._aead.decrypt(sealed.nonce, sealed.ciphertext, sealed.name.encode())
        except InvalidTag:
            raise SecretUnreadable(
                f"secret {sealed.name!r} does not decrypt: its row was altered or sealed "
                "under another name"
            ) from None
        return plain.decode()

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"


class Keyring:
    """The key new values are sealed with, plus older keys still able to open rows."""

    def __init__(self, primary: MasterKey, *older: MasterKey) -> None:
        self.primary = primary
        self._keys = {key.key_id: key for key in (*older, primary)}

    def seal(self, name: str, value: str) -> SealedSecret:
        return self.primary.seal(name, value)

    def open(self, sealed: SealedSecret) -> str:
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise SecretUnreadable(
                f"secret {sealed.name!r} was sealed under master key {sealed.key_id}, which "
                f"this daemon does not have (its key is {self.primary.key_id}): give every "
                "daemon sharing the store the same master key"
            )
        return key.open(sealed)

    def rotated(self, new: MasterKey) -> Keyring:
        """A keyring sealing with ``new`` that still opens what this one does."""
        return Keyring(new, *self._keys.values())
