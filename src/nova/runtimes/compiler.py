"""Asynchronous builds of compiled languages: ``compile_status`` and the compiled artefacts.

Create and update store a compiled function's source at once and start its build in the
background (``pending`` while it waits for a build slot, then ``compiling``); the result is
``success`` (a runnable tree: the bootstrap beside the function's own files) or ``failed``
(the compiler's output says why). An invocation that arrives meanwhile waits for the build, up
to ``compile.wait_s``.

Builds are kept under ``<data_dir>/compiled/<key>``, the key a hash of the runtime, the code
hash, the handler (Nova's main calls it by name), the toolchain's version and Nova's mains, so
equal code builds once across functions and versions and a new toolchain or main builds anew; each build's output
is kept beside it as ``<key>.log``. A failed build leaves only its log, so the same code does not
build again (a change of code or toolchain does). What a build is doing right now is this
daemon's knowledge: another daemon serving the same function builds it there on first use. How
builds ended is recorded in the store too (functions/deployer.py).

The compilers run on the daemon's host, outside any sandbox; they compile, they never run the
function's code (Go's and Rust's compilers run no user code; ``go`` fetches modules a go.mod
requires from the Go module proxy without running them).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nova.code.cache import link_tree
from nova.core.errors import CompileFailed, StillCompiling
from nova.runtimes.dependencies import run_build_command
from nova.runtimes.toolchains import TOOLCHAINS, WRAPPERS_DIGEST, BuildInputs

_OUTPUT_TAIL = 4000  # characters of the compiler's output an error message carries


@dataclass(frozen=True, slots=True)
class CompileState:
    status: str  # pending | compiling | success | failed
    output: str  # the compiler's output (its command first); empty until it has run
    key: str


@dataclass(frozen=True, slots=True)
class CompileJob:
    """One function's code to build: what the key covers, and where its files are."""

    runtime: str
    handler: str
    code_hash: str
    compiler: str
    version: str  # the toolchain's version (GET /runtimes): a new one builds anew
    source: Path  # the function's code on disk (code/cache.py)


class Compiler:
    def __init__(self, root: Path, cache: Path, timeout_s: float, concurrency: int) -> None:
        self._root = root
        self._cache = cache
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._compiling: set[str] = set()

    @staticmethod
    def compiles(runtime: str) -> bool:
        return runtime in TOOLCHAINS

    @staticmethod
    def key(job: CompileJob) -> str:
        parts = (job.runtime, job.code_hash, job.handler, job.version, WRAPPERS_DIGEST)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]

    def building(self, job: CompileJob) -> bool:
        """Whether this daemon is building ``job`` (or waiting to) right now."""
        return self.key(job) in self._running

    def built_dir(self, key: str) -> Path | None:
        """The runnable tree of the build ``key`` when this daemon's disk has it."""
        path = self._root / key
        return path if path.is_dir() else None

    def state(self, job: CompileJob) -> CompileState:
        """Where the build of ``job`` is; ``pending`` also when it was never started here."""
        key = self.key(job)
        if key in self._compiling:
            return CompileState("compiling", "", key)
        if key in self._running:
            return CompileState("pending", "", key)
        log = self._root / f"{key}.log"
        if not log.is_file():
            return CompileState("pending", "", key)
        status = "success" if (self._root / key).is_dir() else "failed"
        return CompileState(status, log.read_text(errors="replace"), key)

    def start(self, job: CompileJob) -> asyncio.Task[None] | None:
        """Start building ``job`` unless it is built (or failed) or building: the running
        build, or None when there is nothing to wait for."""
        key = self.key(job)
        running = self._running.get(key)
        if running is not None:
            return running
        if (self._root / f"{key}.log").is_file():
            return None
        task = asyncio.get_running_loop().create_task(self._build(job, key))
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))
        return task

    async def built(self, job: CompileJob, wait_s: float | None) -> Path:
        """The runnable tree of ``job``, built now (waiting up to ``wait_s``, None: until the
        build ends) or before.
        CompileFailed with the compiler's output; StillCompiling when the wait ran out."""
        task = self.start(job)
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=wait_s)  # never cancels the build
            if not done:
                raise StillCompiling(
                    f"the {job.runtime} build of this function's code is still running after "
                    f"{wait_s or 0:g}s (compile.wait_s); retry shortly, or watch compile_status "
                    "with `nova fn get NAME`"
                )
        state = self.state(job)
        if state.status != "success":
            raise CompileFailed(
                f"the function's {job.runtime} code did not compile (compile_status failed); "
                "fix it and update the function. The compiler's output (nova fn build-log):\n"
                f"{state.output[-_OUTPUT_TAIL:]}"
            )
        return self._root / state.key

    async def _build(self, job: CompileJob, key: str) -> None:
        async with self._slots:
            self._compiling.add(key)
            try:
                await asyncio.to_thread(self._compile, job, key)
            finally:
                self._compiling.discard(key)

    def _compile(self, job: CompileJob, key: str) -> None:
        self._root.mkdir(parents=True, exist_ok=True, mode=0o755)
        self._cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        work = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=self._root))
        log_path = self._root / f"{key}.log"
        try:
            work.chmod(0o755)  # sandboxes run as an unprivileged uid and read these files
            source, output = work / "source", work / "output"
            shutil.copytree(job.source, source, symlinks=True)
            output.mkdir(mode=0o755)
            inputs = BuildInputs(source, output, job.handler, job.compiler, self._cache)
            try:
                command = TOOLCHAINS[job.runtime](inputs)
            except OSError as exc:
                log_path.write_text(f"nova could not prepare the build: {exc}\n")
                return
            status, log = _run(command.argv, command.env, source, self._timeout_s)
            log_path.write_text(f"$ {' '.join(command.argv)}\n{log}")
            if status != 0:
                how = f"exit status {status}" if isinstance(status, int) else status
                with log_path.open("a") as file:
                    file.write(f"\nthe build failed ({how})\n")
                return
            link_tree(job.source, output)  # the function's own files, beside the bootstrap
            os.rename(output, self._root / key)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _run(
    argv: list[str], env: dict[str, str], cwd: Path, timeout_s: float
) -> tuple[int | str, str]:
    """The compiler with only PATH and LANG of the daemon's environment, HOME in the build."""
    base = {name: os.environ[name] for name in ("PATH", "LANG") if name in os.environ}
    return run_build_command(argv, cwd, timeout_s, {**base, "HOME": str(cwd), **env})
