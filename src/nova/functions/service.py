"""Create / update / delete functions: validate, write the code, store, then redeploy.

Everything is checked before anything is written: the merged config (functions/rules.py, the
same rules for create and update), the code (code/bundle.py) and the environment's quotas
(functions/quota_checks.py). The code is then written to disk *before* the store row, and
removed again if storing fails, so a stored function never points at code that cannot be
materialised and a refused request leaves nothing behind. The pool is updated last, so a crash in
between leaves the stored function authoritative; the next invocation loads it from the store.
Changes to one function are serialised.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

from nova.code import bundle as bundles
from nova.code.host_path import read_host_path
from nova.code.policy import CodePolicy
from nova.core.errors import RequestInvalid
from nova.core.models import CodeBundle, CodeFile, FunctionConfig, FunctionRecord, Page
from nova.core.tenancy import Environment, validate_full_name
from nova.functions.deployer import Deployer
from nova.functions.locks import KeyedLock
from nova.functions.quota_checks import QuotaChecks
from nova.functions.resolver import FunctionResolver
from nova.functions.rules import (
    FunctionLimits,
    check_config,
    check_handler_file,
    handler_files,
)
from nova.runtimes.compiler import CompileState
from nova.runtimes.dependencies import BuildLog
from nova.runtimes.registry import RuntimeRegistry
from nova.runtimes.syntax import check_syntax
from nova.sandbox.registry import BackendRegistry
from nova.store.ports import Store


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
        deployer: Deployer,
        runtimes: RuntimeRegistry,
        backends: BackendRegistry,
        code_policy: CodePolicy,
        limits: FunctionLimits,
        quota_checks: QuotaChecks | None = None,
    ) -> None:
        self._store = store
        self._resolver = resolver
        self._deployer = deployer  # stages code before it is stored
        self._runtimes = runtimes
        self._backends = backends
        self._code_policy = code_policy
        self._limits = limits
        self._quotas = quota_checks  # None: no environment has quotas
        self._changing = KeyedLock()  # function name -> one create/update/delete at a time

    async def create(self, fields: Mapping[str, Any], source: CodeSource) -> FunctionRecord:
        name = validate_full_name(str(fields.get("name", "")))
        runtime = str(fields.get("runtime", ""))
        spec, _ = self._runtimes.require_available(runtime)
        given = fields.get("env")
        defaults = {}  # a registered runtime's env, under the function's own
        if spec.env and (given is None or isinstance(given, dict)):
            defaults = {"env": {**dict(spec.env), **(given or {})}}
        config = self._checked(
            FunctionConfig(
                **{
                    **fields,
                    "name": name,
                    "handler": fields.get("handler") or spec.default_handler,
                    **defaults,
                }
            )
        )
        if len(source.given()) != 1:
            raise RequestInvalid("code: give exactly one of code, files, code_path or a zip upload")
        code = await self._bundle(config, source)
        async with self._changing.hold(name):
            fits = self._quotas.creating(config, code.size) if self._quotas else nullcontext()
            async with fits, self._deployer.code_staged(code, config.runtime) as staged:
                record = await self._store.functions.create(config, code)
                await self._deployer.adopt(staged, record)
            await self._resolver.function_changed(record, code)
        return record

    async def update(
        self, name: str, changes: Mapping[str, Any], source: CodeSource
    ) -> FunctionRecord:
        async with self._changing.hold(name):
            current = await self._store.functions.get(name)
            if "name" in changes and changes["name"] != name:
                raise RequestInvalid("name: a function cannot be renamed; create a new one instead")
            if len(source.given()) > 1:
                raise RequestInvalid(
                    "code: give at most one of code, files, code_path or a zip upload"
                )
            merged = {key: value for key, value in changes.items() if key != "name"}
            config = self._checked(dataclasses.replace(current.config, **merged))
            code = await self._bundle(config, source) if source.given() else None
            if config == current.config and (code is None or code.sha256 == current.code_hash):
                return current  # nothing changes: no new revision, no redeploy
            size = None if code is None else code.size
            fits = self._quotas.updating(current, config, size) if self._quotas else nullcontext()
            async with fits:
                if code is not None:
                    async with self._deployer.code_staged(code, config.runtime) as staged:
                        record = await self._store.functions.update(name, config, code)
                        await self._deployer.adopt(staged, record)
                else:
                    if "handler" in merged or "runtime" in merged:
                        check_handler_file(config, await self._store.functions.get_code(name))
                    record = await self._store.functions.update(name, config, None)
            await self._resolver.function_changed(record, code)
        return record

    async def delete(self, name: str) -> None:
        """Delete the function; invocations already running finish (within their timeout)."""
        async with self._changing.hold(name):
            self._resolver.function_deleted(await self._store.functions.delete(name))

    async def build_log(self, name: str) -> BuildLog:
        """The log of the function's current build: its compilation in a compiled language,
        else the installation of the dependencies its code names."""
        record = await self._store.functions.get(name)
        compiled = await self.compile_state(record)
        if compiled is not None:
            return BuildLog(compiled.status, compiled.output, compiled.key)
        code = await self._store.functions.get_code(name)
        return self._deployer.build_log(record.config.runtime, code)

    async def compile_state(self, record: FunctionRecord) -> CompileState | None:
        """Where the build of the function's code is (None: not a compiled language)."""
        return await self._deployer.compile_state(record.id, record.config, record.code_hash)

    async def get(self, name: str) -> FunctionRecord:
        return await self._store.functions.get(name)

    async def list(
        self, limit: int, cursor: str | None, environment: Environment | None = None
    ) -> Page[FunctionRecord]:
        return await self._store.functions.list(limit=limit, cursor=cursor, environment=environment)

    def _checked(self, config: FunctionConfig) -> FunctionConfig:
        # An alias (`custom`) is stored as the runtime's own name (`provided`).
        config = dataclasses.replace(config, runtime=self._runtimes.canonical(config.runtime))
        return check_config(config, self._runtimes, self._backends, self._limits)

    async def _bundle(self, config: FunctionConfig, source: CodeSource) -> CodeBundle:
        """The validated code, read off the event loop (a zip or a host directory can be
        hundreds of megabytes)."""
        code = await asyncio.to_thread(self._read_code, config, source)
        code = self._with_runtime_bootstrap(config, code)
        check_handler_file(config, code)
        await check_syntax(self._runtimes.get(config.runtime), code)
        return code

    def _with_runtime_bootstrap(self, config: FunctionConfig, code: CodeBundle) -> CodeBundle:
        """A registered runtime's bootstrap joins a package that ships none: stored with the
        code, so its hash covers it and every daemon runs the same file."""
        spec = self._runtimes.get(config.runtime).spec
        if spec.bootstrap is None or "bootstrap" in code.files:
            return code
        bootstrap = CodeFile(spec.bootstrap.encode(), executable=True)
        return CodeBundle({**code.files, "bootstrap": bootstrap})

    def _read_code(self, config: FunctionConfig, source: CodeSource) -> CodeBundle:
        policy = self._code_policy
        if source.code is not None:
            return bundles.from_source(source.code, self._source_file(config), policy)
        if source.files is not None:
            return bundles.from_file_map(source.files, policy)
        if source.code_path is not None:
            return read_host_path(source.code_path, policy)
        if source.zip_bytes is not None:
            return bundles.from_zip(source.zip_bytes, policy)
        raise RequestInvalid("code: give exactly one of code, files, code_path or a zip upload")

    def _source_file(self, config: FunctionConfig) -> str:
        """Where a single `code` source is stored: the handler's module file."""
        wanted = handler_files(config)
        if wanted:
            return wanted[0]
        spec, _ = self._runtimes.require_available(config.runtime)
        return bundles.handler_module(config.handler) + spec.extension
