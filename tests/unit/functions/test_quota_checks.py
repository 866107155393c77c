"""Environment quotas on create and update: refused before anything is stored, naming the
quota; a change that asks for no more is never refused."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest

from nova.core.quotas import QuotaExceeded, Quotas
from nova.core.tenancy import DEFAULT_ENVIRONMENT, Environment
from nova.functions.quota_checks import QuotaChecks
from nova.functions.service import CodeSource
from tests.unit.functions.conftest import Functions

PROD = Environment("acme", "shop", "prod")
HANDLER = "def handler(event, context):\n    return event\n"
BIG = HANDLER + "# padding\n" * 100


@pytest.fixture
def quotas() -> dict[Environment, Quotas]:
    return {}


@pytest.fixture
def limited(
    functions: Functions, quotas: dict[Environment, Quotas], monkeypatch: pytest.MonkeyPatch
) -> Functions:
    async def source(environment: Environment) -> Quotas:
        return quotas.get(environment, Quotas())

    repository = functions.store.functions
    counted = repository.usage

    async def usage(environment: Environment) -> tuple[int, int]:
        found = await counted(environment)
        # A slow store's query: requests racing this one reach their own count meanwhile.
        await asyncio.sleep(0.05)
        return found

    monkeypatch.setattr(repository, "usage", usage)
    # The shared fixture builds its service without checks; these tests give it some.
    functions.service._quotas = QuotaChecks(source, repository)
    return functions


async def _create(functions: Functions, name: str, code: str = HANDLER, **fields: object) -> None:
    await functions.service.create(
        {"name": name, "runtime": "python", **fields}, CodeSource(code=code)
    )


async def _names(functions: Functions) -> list[str]:
    return [record.name for record in (await functions.store.functions.list()).items]


async def test_max_functions_counts_only_the_environment_s_own(
    limited: Functions, quotas: dict[Environment, Quotas]
) -> None:
    quotas[PROD] = Quotas(max_functions=2)
    await _create(limited, "acme.shop.prod.a")
    await _create(limited, "acme.shop.prod.b")
    await _create(limited, "other")  # the default environment has no quotas
    await _create(limited, "acme.shop.dev.c")
    with pytest.raises(QuotaExceeded, match=r"acme/shop/prod .* max_functions \(3 > limit 2\)"):
        await _create(limited, "acme.shop.prod.c")
    assert "acme.shop.prod.c" not in await _names(limited)
    await limited.service.delete("acme.shop.prod.a")
    await _create(limited, "acme.shop.prod.c")


async def test_max_memory_mb_on_create_and_when_an_update_raises_it(
    limited: Functions, quotas: dict[Environment, Quotas]
) -> None:
    quotas[DEFAULT_ENVIRONMENT] = Quotas(max_memory_mb=256)
    with pytest.raises(QuotaExceeded, match="max_memory_mb") as refused:
        await _create(limited, "fn", memory_mb=512)
    assert refused.value.quota == "max_memory_mb"
    assert await _names(limited) == []
    await _create(limited, "fn", memory_mb=256)
    with pytest.raises(QuotaExceeded, match="max_memory_mb"):
        await limited.service.update("fn", {"memory_mb": 384}, CodeSource())
    assert (await limited.store.functions.get("fn")).config.memory_mb == 256
    quotas[DEFAULT_ENVIRONMENT] = Quotas(max_memory_mb=128)  # lowered below what fn has
    await limited.service.update("fn", {"timeout_s": 5}, CodeSource())  # asks for no more
    await limited.service.update("fn", {"memory_mb": 192}, CodeSource())  # shrinks towards it


async def test_max_code_bytes_counts_the_environment_s_code_after_the_change(
    limited: Functions, quotas: dict[Environment, Quotas]
) -> None:
    await _create(limited, "acme.shop.prod.a")
    small = (await limited.store.functions.get("acme.shop.prod.a")).code_size
    quotas[PROD] = Quotas(max_code_bytes=2 * small + 20)
    await _create(limited, "acme.shop.prod.b")
    with pytest.raises(QuotaExceeded, match="max_code_bytes"):
        await _create(limited, "acme.shop.prod.c")  # a third would need 3 * small
    with pytest.raises(QuotaExceeded, match="max_code_bytes"):
        await limited.service.update("acme.shop.prod.b", {}, CodeSource(code=BIG))
    record = await limited.store.functions.get("acme.shop.prod.b")
    assert (record.revision, record.code_size) == (1, small)
    # The old code's size is given back: replacing it by code 20 bytes larger fits.
    bigger = HANDLER + "#" * 19 + "\n"
    await limited.service.update("acme.shop.prod.b", {}, CodeSource(code=bigger))
    assert await limited.store.functions.usage(PROD) == (2, 2 * small + 20)


async def test_without_quota_checks_nothing_is_refused(functions: Functions) -> None:
    await _create(functions, "acme.shop.prod.a", memory_mb=4096, code=BIG)


async def test_creates_racing_in_one_environment_are_counted_one_after_the_other(
    limited: Functions, quotas: dict[Environment, Quotas]
) -> None:
    quotas[PROD] = Quotas(max_functions=3)
    names = [f"acme.shop.prod.f{index}" for index in range(8)]
    results = await asyncio.gather(
        *(_create(limited, name) for name in names), return_exceptions=True
    )
    refused = [result for result in results if isinstance(result, QuotaExceeded)]
    assert len(refused) == 5, results
    assert await limited.store.functions.usage(PROD) == (3, mock.ANY)


async def test_code_growing_updates_racing_are_counted_one_after_the_other(
    limited: Functions, quotas: dict[Environment, Quotas]
) -> None:
    for name in ("acme.shop.prod.a", "acme.shop.prod.b"):
        await _create(limited, name)
    _, used = await limited.store.functions.usage(PROD)
    grown = len(BIG.encode()) - len(HANDLER.encode())
    quotas[PROD] = Quotas(max_code_bytes=used + grown + 10)  # room for one to grow, not two
    updates = (
        limited.service.update(name, {}, CodeSource(code=BIG))
        for name in ("acme.shop.prod.a", "acme.shop.prod.b")
    )
    results = await asyncio.gather(*updates, return_exceptions=True)
    assert sum(isinstance(result, QuotaExceeded) for result in results) == 1, results
    assert (await limited.store.functions.usage(PROD))[1] <= used + grown + 10
