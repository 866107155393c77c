"""Create / update / delete functions: validate, store, then redeploy.

The store is written first and the pool updated after, so a crash in between leaves the
stored function authoritative; the next invocation loads it from the store.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from nova.code import bundle as bundles
from nova.core.errors import RequestInvalid
from nova.core.models import CodeBundle, ExecutionMode, FunctionConfig, FunctionRecord, Page
from nova.core.names import validate_function_name
from nova.functions.resolver import FunctionResolver
from nova.runtimes.registry import RuntimeRegistry
from nova.runtimes.syntax import check_syntax
from nova.sandbox.registry import BackendRegistry
from nova.store.ports import Store

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Node resolves a handler module from any of these; Python only from .py.
HANDLER_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "python": (".py",),
    "node": (".js", ".cjs", ".mjs"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class CodeSource:
    """Exactly one way of supplying code (API.md: code | files | code_path | zip)."""

    code: str | None = None
    files: Mapping[str, str] | None = None
    code_path: str | None = None
    zip_bytes: bytes | None = None

    def given(self) -> list[str]:
        names = ("code", "files", "code_path", "zip")
        values = (self.code, self.files, self.code_path, self.zip_bytes)
        return [name for name, value in zip(names, values, strict=True) if value is not None]


class FunctionService:
    def __init__(
        self,
        store: Store,
        resolver: FunctionResolver,
        runtimes: RuntimeRegistry,
        backends: BackendRegistry,
    ) -> None:
        self._store = store
        self._resolver = resolver
        self._runtimes = runtimes
        self._backends = backends

    async def create(self, fields: Mapping[str, Any], source: CodeSource) -> FunctionRecord:
        name = validate_function_name(str(fields.get("name", "")))
        runtime = str(fields.get("runtime", ""))
        spec, _ = self._runtimes.require_available(runtime)
        config = _validated(
            FunctionConfig(
                **{**fields, "name": name, "handler": fields.get("handler") or spec.default_handler}
            )
        )
        self._check_backend(config)
        if len(source.given()) != 1:
            raise RequestInvalid("code: give exactly one of code, files, code_path or a zip upload")
        code = await self._bundle(config, source)
        record = await self._store.functions.create(config, code)
        await self._resolver.function_changed(record, code)
        return record

    async def update(
        self, name: str, changes: Mapping[str, Any], source: CodeSource
    ) -> FunctionRecord:
        current = await self._store.functions.get(name)
        if "name" in changes and changes["name"] != name:
            raise RequestInvalid("name: a function cannot be renamed; create a new one instead")
        if len(source.given()) > 1:
            raise RequestInvalid("code: give at most one of code, files, code_path or a zip upload")
        merged = {key: value for key, value in changes.items() if key != "name"}
        if "runtime" in merged:
            self._runtimes.require_available(str(merged["runtime"]))
        config = _validated(dataclasses.replace(current.config, **merged))
        self._check_backend(config)
        code = await self._bundle(config, source) if source.given() else None
        if config == current.config and (code is None or code.sha256 == current.code_hash):
            return current  # nothing changes: no new revision, no redeploy
        if code is None and ("handler" in merged or "runtime" in merged):
            code = await self._store.functions.get_code(name)
            self._check_handler(config, code)
            record = await self._store.functions.update(name, config, None)  # code unchanged
        else:
            record = await self._store.functions.update(name, config, code)
        await self._resolver.function_changed(record, code)
        return record

    async def delete(self, name: str) -> None:
        """Delete the function; invocations already running finish (within their timeout)."""
        self._resolver.function_deleted(await self._store.functions.delete(name))

    async def get(self, name: str) -> FunctionRecord:
        return await self._store.functions.get(name)

    async def list(self, limit: int, cursor: str | None) -> Page[FunctionRecord]:
        return await self._store.functions.list(limit=limit, cursor=cursor)

    async def _bundle(self, config: FunctionConfig, source: CodeSource) -> CodeBundle:
        spec, _ = self._runtimes.require_available(config.runtime)
        if source.code is not None:
            code = bundles.from_source(source.code, config.handler, spec.extension)
        elif source.files is not None:
            code = bundles.from_file_map(source.files)
        elif source.code_path is not None:
            code = bundles.from_host_path(source.code_path)
        elif source.zip_bytes is not None:
            code = bundles.from_zip(source.zip_bytes)
        else:
            raise RequestInvalid("code: give exactly one of code, files, code_path or a zip upload")
        self._check_handler(config, code)
        await check_syntax(self._runtimes.get(config.runtime), code)
        return code

    def _check_backend(self, config: FunctionConfig) -> None:
        """Refuse a backend this host cannot run, or a feature the backend lacks, at deploy time."""
        backend = self._backends.resolve(config.backend)
        if config.network and backend == "gvisor":
            raise RequestInvalid(
                "network: network access is not available on the gvisor backend yet; use backend: container"
            )

    @staticmethod
    def _check_handler(config: FunctionConfig, code: CodeBundle) -> None:
        extensions = HANDLER_EXTENSIONS.get(config.runtime)
        if extensions:
            bundles.require_handler_file(code, config.handler, extensions)


def _validated(config: FunctionConfig) -> FunctionConfig:
    """Cross-field rules pydantic cannot see on a PATCH (it only sees the changed fields)."""
    bundles.handler_module(config.handler)
    if config.min_replicas > config.max_replicas:
        raise RequestInvalid(
            f"min_replicas: {config.min_replicas} is more than max_replicas={config.max_replicas}"
        )
    for key in config.env:
        if not _ENV_NAME.fullmatch(key):
            raise RequestInvalid(f"env: {key!r} is not a valid environment variable name")
        if key.startswith("NOVA_") or key.startswith("AWS_LAMBDA_"):
            raise RequestInvalid(
                f"env: {key!r} is reserved; the NOVA_ and AWS_LAMBDA_ prefixes are set by Nova"
            )
    return dataclasses.replace(config, mode=ExecutionMode(config.mode))
