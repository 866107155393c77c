"""Makes a function's $LATEST or one of its versions runnable: its code on disk and a pool.

The code is read from the store only when that code hash is not on disk yet (the cache is
keyed by the same SHA-256). A compiled language's code runs from its build (runtimes/compiler.py),
which starts as soon as the code is on disk and which a deployment waits for. Which (function, version) to deploy, and when, is the resolver's
business (nova.functions.resolver).

Each build's outcome is also recorded in the store (its status, the compiler's output, and the
last build that succeeded), so a restarted daemon, or another one sharing the store, knows it:
a $LATEST whose newest build failed keeps serving the last good build, found on this daemon's
disk by its key, instead of failing after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from nova.code.cache import CodeCache
from nova.core.errors import CompileFailed, StoreUnavailable
from nova.core.models import LATEST_VERSION, CodeBundle, FunctionConfig, FunctionRecord
from nova.pool.deployment import Deployment
from nova.pool.function_pool import FunctionPool
from nova.pool.manager import PoolManager
from nova.runtimes.compiler import CompileJob, Compiler, CompileState
from nova.runtimes.dependencies import BuildLog, DependencyBuilder
from nova.runtimes.registry import RuntimeRegistry
from nova.sandbox.registry import BackendRegistry
from nova.store.ports import Store

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class StagedCode:
    """Code written to a staging directory, waiting for the record it belongs to."""

    code_hash: str
    path: Path
    adopted: bool = False


class Deployer:
    def __init__(
        self,
        store: Store,
        pools: PoolManager,
        cache: CodeCache,
        runtimes: RuntimeRegistry,
        backends: BackendRegistry,
        builder: DependencyBuilder,
        compiler: Compiler,
        compile_wait_s: float,
    ) -> None:
        self._builder = builder
        self._compiler = compiler
        self._compile_wait_s = compile_wait_s
        self._store = store
        self._pools = pools
        self._cache = cache
        self._runtimes = runtimes
        self._backends = backends
        self._recording: set[tuple[str, str]] = set()  # (function id, build key) being watched
        self._records: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def code_staged(self, code: CodeBundle, runtime: str) -> AsyncIterator[StagedCode]:
        """Write ``code`` to disk before the block stores it, so a stored function never points
        at code that cannot be written; the block passes the stored record to :meth:`adopt`.
        Staged code the block did not adopt (it failed) is removed. Dependencies the code names
        are installed first (BuildFailed: nothing is staged)."""
        dependencies = await self._builder.build(runtime, code)
        path = await asyncio.to_thread(self._cache.stage, code, dependencies)
        staged = StagedCode(code.sha256, path)
        try:
            yield staged
        finally:
            if not staged.adopted:
                await asyncio.to_thread(self._cache.discard, staged.path)

    def build_log(self, runtime: str, code: CodeBundle) -> BuildLog:
        """The log of the dependency build ``code`` names (status ``none`` if it names none)."""
        return self._builder.log(runtime, code)

    def compiles(self, config: FunctionConfig) -> bool:
        return self._compiler.compiles(config.runtime)

    def start_compile(self, function_id: str, config: FunctionConfig, code_hash: str) -> None:
        """Start building the code of a compiled language in the background (no-op for the
        others, and for code already built or not on this daemon's disk yet)."""
        job = self._compile_job(function_id, config, code_hash)
        if job is not None and job.source.is_dir():
            self._start_compile(function_id, job)

    def _start_compile(self, function_id: str, job: CompileJob) -> None:
        """Start the build (unless built or building) and record its outcome when it ends."""
        task = self._compiler.start(job)
        watched = (function_id, self._compiler.key(job))
        if task is None or watched in self._recording:
            return
        self._recording.add(watched)

        async def record() -> None:
            await asyncio.wait({task})
            self._recording.discard(watched)
            state = self._compiler.state(job)
            if state.status not in ("success", "failed"):
                return  # stopped with the daemon: the next one builds it again
            try:
                await self._store.builds.record(
                    function_id, job.code_hash, state.status, state.output, state.key
                )
            except StoreUnavailable as exc:
                logger.warning("cannot record the build of %s: %s", function_id, exc.message)

        recording = asyncio.get_running_loop().create_task(record())
        self._records.add(recording)
        recording.add_done_callback(self._records.discard)

    async def compiled(
        self, function_id: str, config: FunctionConfig, code_hash: str, wait_s: float | None
    ) -> None:
        """Wait up to ``wait_s`` (None: until it ends) for the build of this code
        (CompileFailed, StillCompiling)."""
        job = self._compile_job(function_id, config, code_hash)
        if job is not None:
            self._start_compile(function_id, job)
            await self._compiler.built(job, wait_s)

    async def compile_state(
        self, function_id: str, config: FunctionConfig, code_hash: str
    ) -> CompileState | None:
        """Where the build of this code is (None for a language that is not compiled): what
        this daemon knows, else what the store recorded of the same build."""
        job = self._compile_job(function_id, config, code_hash)
        if job is None:
            return None
        state = self._compiler.state(job)
        if state.status != "pending" or self._compiler.building(job):
            return state
        stored = await self._store.builds.get(function_id)
        if stored is not None and stored.key == state.key:
            return CompileState(stored.status, stored.output, stored.key)
        return state

    async def _last_good_build(self, function_id: str) -> tuple[Path, str] | None:
        """The directory and code hash of the function's last successful build, when this
        daemon's disk has it."""
        stored = await self._store.builds.get(function_id)
        if stored is None or stored.good_key is None or stored.good_code_hash is None:
            return None
        built = self._compiler.built_dir(stored.good_key)
        return None if built is None else (built, stored.good_code_hash)

    def _compile_job(
        self, function_id: str, config: FunctionConfig, code_hash: str
    ) -> CompileJob | None:
        if not self._compiler.compiles(config.runtime):
            return None
        status = self._runtimes.get(config.runtime)
        return CompileJob(
            config.runtime,
            config.handler,
            code_hash,
            status.interpreter or "",
            status.version,
            self._cache.path_for(function_id, code_hash),
        )

    async def adopt(self, staged: StagedCode, record: FunctionRecord) -> None:
        """Move staged code into place as ``record``'s code."""
        await asyncio.to_thread(self._cache.adopt, staged.path, record.id, staged.code_hash)
        staged.adopted = True

    async def deploy(
        self,
        function_id: str,
        version: str,
        config: FunctionConfig,
        code_hash: str,
        revision: int = 0,
        code: CodeBundle | None = None,
    ) -> FunctionPool:
        """The pool of (function, version), created or moved to this config and code; a
        compiled language's code is built first (waiting up to ``compile.wait_s``)."""
        runtime, interpreter = self._runtimes.require_available(config.runtime)
        code_dir = self._cache.path_for(function_id, code_hash)
        if not code_dir.is_dir():
            if code is None or code.sha256 != code_hash:
                code = await self._store.functions.get_code_by_hash(function_id, code_hash)
            if code.sha256 != code_hash:  # changed again since the caller read it
                raise StoreUnavailable(
                    f"the code of {config.name!r} changed while it was being deployed; retry"
                )
            # Another daemon stored this code, or the disk was wiped: build what it names here.
            dependencies = await self._builder.build(config.runtime, code)
            code_dir = await asyncio.to_thread(
                self._cache.materialise, function_id, code, dependencies
            )
        job = self._compile_job(function_id, config, code_hash)
        if job is not None:
            self._start_compile(function_id, job)
            try:
                code_dir = await self._compiler.built(job, self._compile_wait_s)
            except CompileFailed:
                # A $LATEST whose newest build failed serves its last good one, as it did
                # before this daemon (re)started; a version's code never changes: it fails.
                good = await self._last_good_build(function_id)
                if version != LATEST_VERSION or good is None:
                    raise
                code_dir, code_hash = good
        deployment = Deployment(
            function_id=function_id,
            config=config,
            version=version,
            code_hash=code_hash,
            code_dir=code_dir,
            interpreter=runtime.sandbox_interpreter or interpreter,
            hot_reload=self._backends.get(config.backend).info.supports_reload
            and runtime.interpreted,
            revision=revision,
            agent_runtime=runtime.agent_runtime,
        )
        return self._pools.deploy(deployment)

    def retire_version(self, function_id: str, version: str) -> None:
        """Stop serving one version (it was deleted); running invocations finish first."""
        self._pools.retire(function_id, version)

    def retire_function(self, function_id: str) -> None:
        """Stop serving every version of a deleted function; running invocations finish
        first, and its code leaves the disk once its instances are gone."""

        async def forget_code() -> None:
            await asyncio.to_thread(self._cache.forget, function_id)

        self._pools.retire(function_id, None, forget_code)

    def pools_of(self, function_id: str) -> list[FunctionPool]:
        return self._pools.of_function(function_id)
