"""Refusing code with syntax errors when it is deployed, instead of at its first invocation.

Python files are compiled with :func:`compile` (in a thread: a large file takes a while);
Node files are checked with ``node --check FILE``, one process per file, a few at a time, each
under a timeout. The first error found becomes 422 ``Code.SyntaxError`` naming the file and
the line.

Checked: the files the runtime would load (``.py``; ``.js``, ``.cjs``, ``.mjs``), except
third-party code, which is not the user's to fix and may hold files no import ever reaches
(tests, other Python versions): anything under ``node_modules/``, ``site-packages/``,
``dist-packages/``, ``__pycache__/`` or a hidden directory, and the files a shipped Python
distribution lists in its ``*.dist-info/RECORD``.

When the runtime's Python is another minor version than the daemon's, its grammar differs, so
that interpreter compiles the files itself (one subprocess, under a timeout).

A file that cannot be checked is let through, never refused: a compile that hits CPython's
own limits (SystemError from CPython gh-106905 in Debian's 3.11.2, RecursionError,
MemoryError), a check that does not finish in time or cannot run.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from nova.core.errors import CodeSyntaxError
from nova.core.models import CodeBundle, CodeFile
from nova.runtimes.registry import RuntimeStatus

logger = logging.getLogger(__name__)

PYTHON_EXTENSIONS = (".py",)
NODE_EXTENSIONS = (".js", ".cjs", ".mjs")
THIRD_PARTY_DIRS = frozenset({"node_modules", "site-packages", "dist-packages", "__pycache__"})
NODE_CHECK_TIMEOUT_S = 10.0
_NODE_CHECKS_AT_ONCE = max(1, os.cpu_count() or 1)
_PYTHON_VERSION = re.compile(r"Python (\d+)\.(\d+)")
_NODE_LOCATION = re.compile(r"^(?P<file>.+):(?P<line>\d+)$")
_NODE_ERROR = re.compile(r"^(?P<kind>\w*Error): (?P<message>.*)$")


async def check_syntax(runtime: RuntimeStatus, bundle: CodeBundle) -> None:
    """Raise CodeSyntaxError for the first file with a syntax error, if any."""
    if runtime.spec.name == "python" and _same_python(runtime.version):
        problems = await asyncio.to_thread(_python_problems, bundle)
    elif runtime.spec.name == "python" and runtime.interpreter is not None:
        problems = await _other_python_problems(runtime.interpreter, bundle)
    elif runtime.spec.name == "node" and runtime.interpreter is not None:
        problems = await _node_problems(runtime.interpreter, bundle)
    else:
        return
    if problems:
        more = len(problems) - 1
        suffix = f" (and {more} more file(s) with syntax errors)" if more else ""
        raise CodeSyntaxError(f"code: {problems[0]}{suffix}")


def checked_files(
    files: Iterable[str], extensions: tuple[str, ...], shipped: frozenset[str] = frozenset()
) -> list[str]:
    """The paths among ``files`` with one of ``extensions`` that are the user's own source:
    not in ``shipped`` nor under a third-party or hidden directory."""
    return [
        path
        for path in sorted(files)
        if path.endswith(extensions)
        and path not in shipped
        and not any(
            part in THIRD_PARTY_DIRS or part.startswith(".")
            for part in PurePosixPath(path).parts[:-1]
        )
    ]


def _same_python(version: str) -> bool:
    """Whether the runtime's ``Python X.Y.Z`` has the daemon's grammar (same minor version)."""
    found = _PYTHON_VERSION.search(version)
    return found is not None and (int(found[1]), int(found[2])) == sys.version_info[:2]


def _python_problems(bundle: CodeBundle) -> list[str]:
    problems = []
    for path in _python_files(bundle):
        problem = python_problem(path, bundle.files[path].content)
        if problem is not None:
            problems.append(problem)
    return problems


def _python_files(bundle: CodeBundle) -> list[str]:
    return checked_files(bundle.files, PYTHON_EXTENSIONS, distribution_files(bundle.files))


def distribution_files(files: Mapping[str, CodeFile]) -> frozenset[str]:
    """Every file a shipped Python distribution lists in its ``*.dist-info/RECORD`` (paths
    relative to the directory holding the ``.dist-info``, as ``pip install --target`` writes)."""
    recorded: set[str] = set()
    for path in files:
        record = PurePosixPath(path)
        if record.name != "RECORD" or not record.parent.name.endswith(".dist-info"):
            continue
        base = record.parent.parent
        for line in files[path].content.decode("utf-8", "replace").splitlines():
            entry = line.split(",", 1)[0].strip()
            if entry:
                recorded.add((base / entry).as_posix())
    return frozenset(recorded)


def python_problem(path: str, source: bytes) -> str | None:
    """``path line N: SyntaxError: …`` when ``source`` does not compile, else None."""
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return _describe(path, exc.lineno, type(exc).__name__, exc.msg, exc.text)
    except ValueError as exc:  # NUL bytes: the import fails the same way
        return _describe(path, None, "SyntaxError", str(exc), None)
    except (SystemError, RecursionError, MemoryError) as exc:
        logger.info("syntax of %s not checked: the compiler gave up (%s)", path, exc)
    return None


def _describe(path: str, line: int | None, kind: str, message: str, text: str | None) -> str:
    where = f"{path} line {line}" if line else path
    source = (text or "").strip()
    return f"{where}: {kind}: {message}" + (f": {source}" if source else "")


# What the runtime's own interpreter runs on the files when its grammar is not the daemon's:
# the same checks as python_problem, one repr()'d tuple per broken file. (No f-strings: the
# interpreter may be older than any syntax this file relies on.)
_CHECK_WITH_ITS_GRAMMAR = """
import sys
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as file:
            compile(file.read(), path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        print(repr((path, exc.lineno, type(exc).__name__, exc.msg, exc.text)))
    except ValueError as exc:
        print(repr((path, None, "SyntaxError", str(exc), None)))
    except (SystemError, RecursionError, MemoryError):
        pass
"""
OTHER_PYTHON_TIMEOUT_S = 30.0


async def _other_python_problems(python: str, bundle: CodeBundle) -> list[str]:
    paths = _python_files(bundle)
    if not paths:
        return []
    with tempfile.TemporaryDirectory(prefix="nova-syntax-") as scratch:
        await asyncio.to_thread(_write, Path(scratch), bundle.files, paths)
        command = [python, "-I", "-S", "-c", _CHECK_WITH_ITS_GRAMMAR, *paths]
        output = await _run_check(command, Path(scratch), OTHER_PYTHON_TIMEOUT_S, "stdout")
    problems = []
    for line in (output or "").splitlines():
        try:
            problems.append(_describe(*ast.literal_eval(line)))
        except (ValueError, SyntaxError, TypeError):
            logger.warning("unexpected line from %s's syntax check: %.200r", python, line)
    return problems


async def _node_problems(node: str, bundle: CodeBundle) -> list[str]:
    paths = checked_files(bundle.files, NODE_EXTENSIONS)
    if not paths:
        return []
    with tempfile.TemporaryDirectory(prefix="nova-syntax-") as scratch:
        # package.json files decide whether a .js file is CommonJS or an ES module.
        manifests = [path for path in bundle.files if PurePosixPath(path).name == "package.json"]
        await asyncio.to_thread(_write, Path(scratch), bundle.files, [*paths, *manifests])
        limit = asyncio.Semaphore(_NODE_CHECKS_AT_ONCE)
        results = await asyncio.gather(
            *(_node_check(node, Path(scratch), path, limit) for path in paths)
        )
    return [problem for problem in results if problem is not None]


def _write(root: Path, files: Mapping[str, CodeFile], paths: Iterable[str]) -> None:
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[path].content)


async def _node_check(node: str, root: Path, path: str, limit: asyncio.Semaphore) -> str | None:
    async with limit:
        command = [node, "--check", str(root / path)]
        stderr = await _run_check(command, root, NODE_CHECK_TIMEOUT_S, "stderr")
    return None if stderr is None else node_problem(path, stderr)


async def _run_check(command: list[str], cwd: Path, timeout_s: float, stream: str) -> str | None:
    """The ``stream`` ("stdout" or "stderr") of ``command``; None when it succeeded, could not
    run or ran out of time (the code is then let through)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    except OSError as exc:
        logger.warning("syntax not checked: %s does not run: %s", command[0], exc)
        return None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        logger.warning("syntax not checked: %s took longer than %gs", command[0], timeout_s)
        return None
    if stream == "stderr":
        return None if process.returncode == 0 else stderr.decode("utf-8", "replace")
    return stdout.decode("utf-8", "replace")


def node_problem(path: str, stderr: str) -> str | None:
    """``path line N: SyntaxError: …`` from ``node --check``'s report, None if it has none."""
    lines = stderr.splitlines()
    error = next((match for line in lines if (match := _NODE_ERROR.match(line))), None)
    if error is None:
        return None  # node failed for another reason (not a syntax error): let it through
    location = _NODE_LOCATION.match(lines[0]) if lines else None
    where = f"{path} line {location['line']}" if location else path
    return f"{where}: {error['kind']}: {error['message']}"
