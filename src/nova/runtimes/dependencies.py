"""Dependencies installed at deploy time: requirements.txt (Python), package.json (Node).

A function's package may name its dependencies instead of shipping them. Create and update run
the installer before anything is stored - pip into a target directory, npm into node_modules -
and the result joins the function's code on disk (code/cache.py), never fetched at invocation
time. Builds are cached under ``<data_dir>/builds/<key>``, the key a hash of the runtime and the
dependency files, so equal dependency files build once (across functions and versions); each
build's log is kept beside it as ``<key>.log`` (``nova fn build-log``). A failed build raises
BuildFailed with the log's tail: the request fails and what was deployed keeps serving.

The installers run on the daemon's host, outside any sandbox, so they must not run package
code: pip takes wheels only (``--only-binary :all:``, no setup.py) and npm runs no install
scripts (``--ignore-scripts``). A package that needs either is refused with the installer's
message; vendor it built instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import BuildFailed
from nova.core.models import CodeBundle

# runtime -> (the file that asks for a build, the files whose content decides the build)
DEPENDENCY_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "python": ("requirements.txt", ("requirements.txt",)),
    "node": ("package.json", ("package.json", "package-lock.json", "npm-shrinkwrap.json")),
}
_LOG_TAIL = 3000  # characters of the log a BuildFailed message carries


@dataclass(frozen=True, slots=True)
class BuildLog:
    status: str  # none (no dependency files) | missing (not built here) | success | failed
    log: str
    key: str | None


class DependencyBuilder:
    def __init__(self, root: Path, timeout_s: float, npm: str | None = None) -> None:
        self._root = root
        self._timeout_s = timeout_s
        self._npm = npm or shutil.which("npm")
        self._locks: dict[str, asyncio.Lock] = {}

    def key(self, runtime: str, code: CodeBundle) -> str | None:
        """The build's cache key, or None when the code names no dependencies."""
        trigger, inputs = DEPENDENCY_FILES.get(runtime, ("", ()))
        if not trigger or trigger not in code.files:
            return None
        digest = hashlib.sha256(f"{runtime}\0{sys.version_info[:2]}\0".encode())
        for name in inputs:
            item = code.files.get(name)
            digest.update(name.encode() + b"\0")
            digest.update(item.content if item is not None else b"\0missing\0")
        return digest.hexdigest()[:32]

    async def build(self, runtime: str, code: CodeBundle) -> Path | None:
        """The directory whose files join the code (built now, or earlier), or None."""
        key = self.key(runtime, code)
        if key is None:
            return None
        target = self._root / key
        if target.is_dir():
            return target
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one build per key at a time; the others wait and reuse it
            if not target.is_dir():
                await asyncio.to_thread(self._build, runtime, code, key)
        return target

    def log(self, runtime: str, code: CodeBundle) -> BuildLog:
        key = self.key(runtime, code)
        if key is None:
            return BuildLog("none", "", None)
        path = self._root / f"{key}.log"
        if not path.is_file():
            return BuildLog("missing", "", key)
        status = "success" if (self._root / key).is_dir() else "failed"
        return BuildLog(status, path.read_text(errors="replace"), key)

    def _build(self, runtime: str, code: CodeBundle, key: str) -> None:
        self._root.mkdir(parents=True, exist_ok=True, mode=0o755)
        work = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=self._root))
        log_path = self._root / f"{key}.log"
        try:
            work.chmod(0o755)  # sandboxes run as an unprivileged uid and read these files
            _, inputs = DEPENDENCY_FILES[runtime]
            source = work / "source"
            output = work / "output"
            source.mkdir()
            output.mkdir(mode=0o755)
            for name in inputs:
                if name in code.files:
                    (source / name).write_bytes(code.files[name].content)
            argv = self._command(runtime, source, output)
            status, log = run_build_command(argv, source, self._timeout_s)
            log_path.write_text(f"$ {' '.join(argv)}\n{log}")
            if status != 0:
                how = f"exit status {status}" if isinstance(status, int) else status
                raise BuildFailed(
                    f"installing the {runtime} dependencies failed ({how}); the function "
                    f"was not changed. The end of the log (nova fn build-log):\n"
                    f"{log[-_LOG_TAIL:]}"
                )
            if runtime == "node":
                modules = source / "node_modules"
                if modules.is_dir():
                    os.rename(modules, output / "node_modules")
            os.rename(output, self._root / key)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _command(self, runtime: str, source: Path, output: Path) -> list[str]:
        if runtime == "python":
            return [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "--no-warn-script-location",
                "--no-compile",
                "--only-binary",
                ":all:",
                "--target",
                str(output),
                "-r",
                str(source / "requirements.txt"),
            ]
        if self._npm is None:
            raise BuildFailed("the function has a package.json but npm is not installed here")
        command = "ci" if any((source / lock).is_file() for lock in _NPM_LOCKS) else "install"
        return [
            self._npm,
            command,
            "--omit=dev",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--no-update-notifier",
        ]


_NPM_LOCKS = ("package-lock.json", "npm-shrinkwrap.json")


def run_build_command(
    argv: list[str], cwd: Path, timeout_s: float, env: Mapping[str, str] | None = None
) -> tuple[int | str, str]:
    """(exit status, or why it did not finish; stdout and stderr together). ``env`` None:
    the daemon's own environment."""
    try:
        completed = subprocess.run(
            argv,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output or b""
        return f"timed out after {timeout_s:g}s", output.decode(errors="replace")
    except OSError as exc:
        return f"could not start: {exc}", ""
    return completed.returncode, completed.stdout.decode(errors="replace")
