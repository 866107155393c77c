"""Runtimes registered at run time (``POST /runtimes``): a new interpreted language without a
change to Nova's code.

A registered runtime is a template for custom runtimes: its ``bootstrap`` (a Lambda Runtime API
client in the language, starting with a ``#!`` line naming an interpreter the sandbox has) is
added to every function package of that runtime that ships none, together with its ``env``
defaults, and the agent runs it as it runs any ``provided`` bootstrap. Because the bootstrap
becomes part of the function's stored code, the code hash covers it and every daemon sharing
the store runs the same files. The definitions are kept in ``<data_dir>/runtimes.json`` (per
daemon: register a runtime on each daemon that serves its functions).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nova.core.errors import RequestInvalid

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
MAX_BOOTSTRAP_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class RuntimeDefinition:
    name: str
    bootstrap: str  # the Runtime API client, run as the package's `bootstrap`
    extension: str  # the file a single `code` source is stored as (handler module + this)
    default_handler: str = "handler.handler"
    env: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> RuntimeDefinition:
        """A definition from a request body; RequestInvalid names the first bad field."""
        name = document.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RequestInvalid("name: 1-31 lowercase letters, digits and '-', a letter first")
        bootstrap = document.get("bootstrap")
        if not isinstance(bootstrap, str) or not bootstrap.startswith("#!"):
            raise RequestInvalid(
                "bootstrap: the Runtime API client as text, starting with a #! line naming "
                "its interpreter (e.g. #!/usr/bin/ruby)"
            )
        if len(bootstrap.encode()) > MAX_BOOTSTRAP_BYTES or "\x00" in bootstrap:
            raise RequestInvalid(f"bootstrap: at most {MAX_BOOTSTRAP_BYTES} bytes, without NUL")
        extension = document.get("extension")
        if not isinstance(extension, str) or not _EXTENSION.fullmatch(extension):
            raise RequestInvalid("extension: a dot and 1-10 letters or digits, e.g. '.rb'")
        env = document.get("env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in env.items()
        ):
            raise RequestInvalid("env: an object of string names to string values")
        handler = document.get("default_handler") or "handler.handler"
        description = document.get("description") or ""
        if not isinstance(handler, str) or not isinstance(description, str):
            raise RequestInvalid("default_handler and description must be strings")
        return cls(name, bootstrap, extension, handler, dict(env), description)

    def public(self) -> dict[str, Any]:
        values = asdict(self)
        values["env"] = dict(self.env)
        return values


class RegisteredRuntimes:
    """The definitions on disk: read at start, appended to by ``POST /runtimes``."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def load(self) -> list[RuntimeDefinition]:
        try:
            documents = json.loads(self._path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise RequestInvalid(f"{self._path} cannot be read: {exc}") from exc
        return [RuntimeDefinition.parse(document) for document in documents]

    def save(self, definitions: list[RuntimeDefinition]) -> None:
        """Write the whole list atomically (a crash leaves the old file or the new one)."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".runtimes-", dir=self._path.parent)
        with os.fdopen(handle, "w") as file:
            json.dump([definition.public() for definition in definitions], file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._path)
