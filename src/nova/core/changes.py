"""The control plane's change log: one entry per change, in commit order.

Every create, update or delete of a function, version, alias, secret, queue trigger or API key
writes an entry in the same transaction, numbered by a sequence that only grows. Each daemon
follows the log from the last number it has seen, so a change made through any daemon on a shared
store reaches all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ChangeKind(StrEnum):
    FUNCTION_CREATED = "function.created"
    FUNCTION_UPDATED = "function.updated"
    FUNCTION_DELETED = "function.deleted"
    VERSION_PUBLISHED = "version.published"
    VERSION_DELETED = "version.deleted"
    ALIAS_CHANGED = "alias.changed"
    ALIAS_DELETED = "alias.deleted"
    # A secret's value was set or it was deleted: instances of functions whose env refers to
    # it are replaced, so their next start sees what is stored now.
    SECRET_CHANGED = "secret.changed"
    # A queue trigger was added, changed or deleted: every daemon starts or stops consumers.
    TRIGGER_CHANGED = "trigger.changed"
    # An API key was created, changed or deleted: every daemon reloads its key cache.
    KEY_CHANGED = "key.changed"


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: ChangeKind
    function_id: str
    function_name: str
    version: int | None
    alias: str | None
    at: datetime
    secret: str | None = None  # the secret a SECRET_CHANGED entry names (no function then)
    api_key: str | None = None  # the key id a KEY_CHANGED entry names (no function then)
