"""FunctionService: a refused create or update leaves the store and the code directory as
they were; an accepted one has its code on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nova.core.errors import CodeStorageFailed, FunctionAlreadyExists, RequestInvalid
from nova.functions.service import CodeSource
from nova.sandbox.registry import BackendUnavailable
from tests.unit.functions.conftest import Functions
from tests.zips import zip_bytes

HANDLER = "def handler(event, context):\n    return event\n"


def _tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


async def _create(functions: Functions, code: str = HANDLER, **fields: object) -> None:
    await functions.service.create(
        {"name": "fn", "runtime": "python", **fields}, CodeSource(code=code)
    )


async def test_a_backend_the_host_cannot_run_is_refused_before_anything_is_stored(
    functions: Functions,
) -> None:
    with pytest.raises(BackendUnavailable, match="runsc is not installed"):
        await _create(functions, backend="gvisor")
    assert (await functions.store.functions.list()).items == []
    assert _tree(functions.code_dir) == []
    await _create(functions)  # the name is still free


async def test_update_checks_the_merged_config_with_the_create_rules(
    functions: Functions,
) -> None:
    await _create(functions, memory_mb=64)
    with pytest.raises(RequestInvalid, match=r"^instance_concurrency: 5 workers"):
        await functions.service.update("fn", {"instance_concurrency": 5}, CodeSource())
    with pytest.raises(BackendUnavailable):
        await functions.service.update("fn", {"backend": "gvisor"}, CodeSource())
    assert (await functions.store.functions.get("fn")).revision == 1


async def test_code_that_cannot_be_written_is_never_stored(functions: Functions) -> None:
    functions.code_dir.write_text("a file where the code directory should be")
    with pytest.raises(CodeStorageFailed):
        await _create(functions)
    assert (await functions.store.functions.list()).items == []


async def test_a_refused_create_removes_only_the_code_it_wrote(functions: Functions) -> None:
    await _create(functions)
    before = _tree(functions.code_dir)
    with pytest.raises(FunctionAlreadyExists):
        await _create(functions, code=HANDLER + "# another version\n")
    with pytest.raises(FunctionAlreadyExists):
        await _create(functions)  # the same code: its directory belongs to the stored function
    assert _tree(functions.code_dir) == before


async def test_a_refused_code_upload_changes_nothing(functions: Functions) -> None:
    await _create(functions)
    before = _tree(functions.code_dir)
    conflicting = zip_bytes({"handler.py": HANDLER, "a": "1", "a/b": "2"})
    with pytest.raises(RequestInvalid, match="'a' is a file"):
        await functions.service.update("fn", {}, CodeSource(zip_bytes=conflicting))
    assert (await functions.store.functions.get("fn")).revision == 1
    assert _tree(functions.code_dir) == before


async def test_concurrent_updates_of_one_function_both_land(functions: Functions) -> None:
    """Each update reads the stored config, merges its change and writes it back: without one
    change at a time, the second write would undo the first."""
    await _create(functions)
    memory = CodeSource(code=HANDLER + "# memory\n")
    timeout = CodeSource(code=HANDLER + "# timeout\n")
    await asyncio.gather(
        functions.service.update("fn", {"memory_mb": 256}, memory),
        functions.service.update("fn", {"timeout_s": 5.0}, timeout),
    )
    record = await functions.store.functions.get("fn")
    assert (record.config.memory_mb, record.config.timeout_s, record.revision) == (256, 5.0, 3)


async def test_a_single_source_lands_where_the_runtime_imports_it(functions: Functions) -> None:
    await _create(functions, handler="pkg.app.main", code="def main(e, c):\n    return 1\n")
    assert list((await functions.store.functions.get_code("fn")).files) == ["pkg/app.py"]
