"""The asynchronous build of compiled languages, with the real Go toolchain."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from nova.core.errors import CompileFailed, StillCompiling
from nova.runtimes.compiler import CompileJob, Compiler

GO = shutil.which("go") or ("/usr/lib/go/bin/go" if Path("/usr/lib/go/bin/go").is_file() else None)
pytestmark = pytest.mark.skipif(GO is None, reason="go is not installed (make runtimes)")
# Shared with the end-to-end tests' daemons: Go's standard library is compiled once per host.
CACHE = Path(tempfile.gettempdir()) / f"nova-test-toolchain-cache-{os.getuid()}"

HELLO = (
    "package main\n\nfunc Handler(event map[string]any) (map[string]any, error) {\n"
    '    return map[string]any{"hi": event["name"]}, nil\n}\n'
)


def job(tmp_path: Path, name: str, source: str) -> CompileJob:
    directory = tmp_path / "code" / name
    directory.mkdir(parents=True)
    (directory / "handler.go").write_text(source)
    assert GO is not None
    return CompileJob("go", "handler.Handler", name, GO, "go1.19", directory)


def compiler(tmp_path: Path, concurrency: int = 1) -> Compiler:
    return Compiler(tmp_path / "compiled", CACHE, 300, concurrency)


async def test_a_build_is_pending_then_compiling_then_success(tmp_path: Path) -> None:
    builds = compiler(tmp_path)
    first, second = job(tmp_path, "a" * 64, HELLO), job(tmp_path, "b" * 64, HELLO + "\n")
    assert builds.state(first).status == "pending"  # never started
    builds.start(first)
    builds.start(second)
    await asyncio.sleep(0)  # the first build takes the one slot; the second waits for it
    assert builds.state(first).status == "compiling"
    assert builds.state(second).status == "pending"
    tree = await builds.built(second, None)
    assert builds.state(first).status == "success"
    assert builds.state(second).status == "success"
    assert (tree / "bootstrap").stat().st_mode & 0o111
    assert (tree / "handler.go").read_text() == HELLO + "\n"  # the function's files beside it
    assert "go build" in builds.state(second).output


async def test_the_bootstrap_answers_through_the_runtime_api(tmp_path: Path) -> None:
    """The built program is a Runtime API client: it asks for the next event."""
    tree = await compiler(tmp_path).built(job(tmp_path, "c" * 64, HELLO), None)
    completed = await asyncio.to_thread(
        subprocess.run,
        [str(tree / "bootstrap")],
        env={"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9"},  # the discard port: nothing listens
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 1
    assert "/2018-06-01/runtime/invocation/next" in completed.stderr


async def test_a_syntax_error_fails_with_the_compilers_output(tmp_path: Path) -> None:
    builds = compiler(tmp_path)
    broken = job(tmp_path, "d" * 64, "package main\n\nfunc Handler( {\n")
    with pytest.raises(CompileFailed) as failed:
        await builds.built(broken, None)
    state = builds.state(broken)
    assert state.status == "failed"
    assert "handler.go:3" in state.output
    assert "syntax error" in state.output
    assert "syntax error" in failed.value.message
    assert builds.start(broken) is None  # the same code does not build again


async def test_an_invocation_waits_only_as_long_as_allowed(tmp_path: Path) -> None:
    builds = compiler(tmp_path)
    slow = job(tmp_path, "e" * 64, HELLO)
    with pytest.raises(StillCompiling, match=r"compile\.wait_s"):
        await builds.built(slow, 0)  # the build has not even started
    await builds.built(slow, None)  # and it went on regardless


def test_the_key_covers_code_handler_and_toolchain(tmp_path: Path) -> None:
    base = job(tmp_path, "f" * 64, HELLO)
    keys = {
        Compiler.key(base),
        Compiler.key(CompileJob("go", "handler.Other", base.code_hash, "go", "go1.19", Path())),
        Compiler.key(CompileJob("go", base.handler, "0" * 64, "go", "go1.19", Path())),
        Compiler.key(CompileJob("go", base.handler, base.code_hash, "go", "go1.22", Path())),
    }
    assert len(keys) == 4
    assert (
        Compiler.key(CompileJob("go", base.handler, base.code_hash, "/x", "go1.19", Path())) in keys
    )
