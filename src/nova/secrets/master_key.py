"""Where the master key comes from: ``NOVA_MASTER_KEY``, or a key file the daemon creates.

The file (``<data dir>/master-key`` unless ``secrets.key_file`` says otherwise) is created on
first start with mode 0600, written and fsync'ed before it is used. A rotation writes the new
key beside it as ``master-key.new`` before re-encrypting anything and renames it over the old
one after the re-encryption committed: a daemon stopped in between finds both at its next start
and finishes the rotation (nova.secrets.service), so no crash can leave rows under a key that is
nowhere. Nothing here logs a key, only key ids.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from nova.secrets.keyring import MasterKey

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeySource:
    """The key in use; ``file`` is None when it came from NOVA_MASTER_KEY. ``pending`` is the
    key of a rotation a stopped daemon did not finish (its ``.new`` file)."""

    key: MasterKey
    file: Path | None
    pending: MasterKey | None = None

    @property
    def pending_file(self) -> Path | None:
        return None if self.file is None else self.file.with_name(self.file.name + ".new")


def load_master_key(configured: str | None, key_file: Path) -> KeySource:
    """The key from ``configured`` (NOVA_MASTER_KEY) when set, else from ``key_file``, created
    with a fresh random key if it does not exist. ValueError when a key is malformed."""
    if configured:
        return KeySource(MasterKey.parse(configured), None)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    source = KeySource(_read_or_create(key_file), key_file)
    pending_file = source.pending_file
    if pending_file is not None and pending_file.exists():
        return KeySource(source.key, key_file, _read(pending_file))
    return source


def write_key_file(path: Path, key: MasterKey) -> None:
    """Write ``key`` to a new file of mode 0600 (replacing one left by an earlier attempt)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key.encoded() + "\n")
        file.flush()
        os.fsync(file.fileno())


def replace_key_file(pending: Path, target: Path) -> None:
    """Make the rotation's key the key: rename it over the old one, durably."""
    os.replace(pending, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _read_or_create(path: Path) -> MasterKey:
    if path.exists():
        return _read(path)
    key = MasterKey.generate()
    write_key_file(path, key)
    logger.info("created master key %s in %s (mode 0600); back it up", key.key_id, path)
    return key


def _read(path: Path) -> MasterKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "master key file %s is readable by others (mode %o): chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    try:
        return MasterKey.parse(path.read_text())
    except ValueError as exc:
        raise ValueError(f"master key file {path}: {exc}") from None
