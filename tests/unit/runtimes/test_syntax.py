"""Deploy-time syntax checks: the real compiler and the real `node --check`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from nova.core.errors import CodeSyntaxError
from nova.core.models import CodeBundle, CodeFile
from nova.runtimes import syntax
from nova.runtimes.registry import BUILTIN_RUNTIMES, RuntimeStatus

PYTHON_SPEC, NODE_SPEC = BUILTIN_RUNTIMES[:2]
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed on this host")
THIS_PYTHON = f"Python {sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"


def python(version: str = THIS_PYTHON) -> RuntimeStatus:
    return RuntimeStatus(PYTHON_SPEC, True, sys.executable, version, "ok")


def node(interpreter: str | None = NODE) -> RuntimeStatus:
    return RuntimeStatus(NODE_SPEC, True, interpreter, "v20", "ok")


def bundle(files: dict[str, str]) -> CodeBundle:
    return CodeBundle({path: CodeFile(text.encode()) for path, text in files.items()})


async def refused(runtime: RuntimeStatus, code: CodeBundle) -> str:
    with pytest.raises(CodeSyntaxError) as caught:
        await syntax.check_syntax(runtime, code)
    assert caught.value.code == "Code.SyntaxError"
    assert caught.value.status == 422
    return caught.value.message


async def test_python_syntax_errors_name_the_file_and_the_line() -> None:
    code = bundle({"handler.py": "import helper\n", "helper.py": "def f(:\n    return 1\n"})

    message = await refused(python(), code)

    assert message == "code: helper.py line 1: SyntaxError: invalid syntax: def f(:"


async def test_errors_the_compiler_finds_after_parsing_count_too() -> None:
    message = await refused(python(), bundle({"handler.py": "x = 1\nreturn x\n"}))

    assert message.startswith("code: handler.py line 2: SyntaxError: 'return' outside function")


async def test_every_broken_file_is_counted_and_the_first_is_named() -> None:
    code = bundle({"b.py": "(\n", "a.py": "1 +\n", "handler.py": "pass\n"})

    message = await refused(python(), code)

    assert message.startswith("code: a.py line 1: SyntaxError:")
    assert message.endswith("(and 1 more file(s) with syntax errors)")


async def test_valid_python_passes() -> None:
    code = bundle({"handler.py": "async def handler(e, c):\n    return [x async for x in e]\n"})

    await syntax.check_syntax(python(), code)


async def test_nul_bytes_are_a_syntax_error() -> None:
    message = await refused(python(), bundle({"handler.py": "x = 1\x00\n"}))

    assert message.startswith("code: handler.py: SyntaxError:")


async def test_third_party_and_hidden_directories_are_not_checked() -> None:
    broken = "def (:\n"
    code = bundle(
        {
            "handler.py": "pass\n",
            "node_modules/x/y.py": broken,
            "lib/site-packages/z.py": broken,
            ".venv/lib/w.py": broken,
            "__pycache__/v.py": broken,
            "notes.txt": broken,
        }
    )

    await syntax.check_syntax(python(), code)


async def test_files_of_a_shipped_distribution_are_not_checked() -> None:
    record = (
        "yamlish/__init__.py,sha256=abc,10\nyamlish/py2only.py,,\nyamlish-1.0.dist-info/RECORD,,\n"
    )
    code = bundle(
        {
            "handler.py": "import yamlish\n",
            "yamlish/__init__.py": "",
            "yamlish/py2only.py": "print 'old'\n",
            "yamlish-1.0.dist-info/RECORD": record,
        }
    )

    await syntax.check_syntax(python(), code)
    assert "yamlish/py2only.py" in syntax.distribution_files(code.files)


async def test_python_of_another_minor_version_is_checked_by_its_own_interpreter(
    tmp_path: Path,
) -> None:
    calls = tmp_path / "calls"
    other = tmp_path / "python3.8"  # stands in for another version's interpreter
    other.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {sys.executable} "$@"\n')
    other.chmod(0o755)
    runtime = RuntimeStatus(PYTHON_SPEC, True, str(other), "Python 3.8.10", "ok")
    code = bundle({"handler.py": "import lib\n", "lib.py": "x = 1\ndef (:\n", "ok.py": "y = 2\n"})

    message = await refused(runtime, code)

    assert message == "code: lib.py line 2: SyntaxError: invalid syntax: def (:"
    assert calls.read_text().startswith("-I -S -c ")  # that interpreter compiled the files


async def test_another_python_that_hangs_is_let_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hanging = tmp_path / "python3.8"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(syntax, "OTHER_PYTHON_TIMEOUT_S", 0.2)
    runtime = RuntimeStatus(PYTHON_SPEC, True, str(hanging), "Python 3.8.10", "ok")

    await syntax.check_syntax(runtime, bundle({"handler.py": "def (:\n"}))


@pytest.mark.parametrize(
    "source",
    [
        "x = " + "-" * 100_000 + "1\n",  # MemoryError from the parser
        "x = " + "+".join(["a"] * 100_000) + "\n",  # RecursionError from the compiler
    ],
    ids=["memory", "recursion"],
)
async def test_code_the_compiler_gives_up_on_is_let_through(source: str) -> None:
    await syntax.check_syntax(python(), bundle({"handler.py": source}))


async def test_a_compiler_system_error_is_let_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def gh_106905(*args: object, **kwargs: object) -> None:
        raise SystemError("AST constructor recursion depth mismatch")

    monkeypatch.setattr(syntax, "compile", gh_106905, raising=False)

    await syntax.check_syntax(python(), bundle({"handler.py": "pass\n"}))


@needs_node
async def test_node_syntax_errors_name_the_file_and_the_line() -> None:
    code = bundle(
        {"index.js": "const lib = require('./lib');\n", "lib.js": "const a = 1;\nfunction f( {\n"}
    )

    message = await refused(node(), code)

    assert message == "code: lib.js line 3: SyntaxError: Unexpected end of input"


@needs_node
async def test_es_modules_are_checked_as_modules() -> None:
    good = "export const handler = async () => 1;\n"
    await syntax.check_syntax(node(), bundle({"index.mjs": good}))
    as_module = {"package.json": '{"type": "module"}', "index.js": good}
    await syntax.check_syntax(node(), bundle(as_module))

    message = await refused(node(), bundle({"index.mjs": "export default {\n"}))

    assert message.startswith("code: index.mjs line ")
    assert "SyntaxError" in message


@needs_node
async def test_node_modules_are_not_checked() -> None:
    code = bundle({"index.js": "exports.handler = () => 1;\n", "node_modules/x/index.js": "{\n"})

    await syntax.check_syntax(node(), code)


async def test_a_node_check_that_hangs_is_let_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hanging = tmp_path / "node"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(syntax, "NODE_CHECK_TIMEOUT_S", 0.2)

    await syntax.check_syntax(node(str(hanging)), bundle({"index.js": "{\n"}))


async def test_a_node_that_fails_without_a_syntax_error_is_let_through(tmp_path: Path) -> None:
    broken = tmp_path / "node"
    broken.write_text("#!/bin/sh\necho 'node: bad option' >&2\nexit 9\n")
    broken.chmod(0o755)

    await syntax.check_syntax(node(str(broken)), bundle({"index.js": "{\n"}))
