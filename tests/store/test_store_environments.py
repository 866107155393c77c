"""The EnvironmentRepository contract and the environment filters of the other repositories,
on SQLite, PostgreSQL and the in-memory fake."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nova.core.quotas import Quotas
from nova.core.secrets import SealedSecret
from nova.core.tenancy import (
    DEFAULT_ENVIRONMENT,
    Environment,
    EnvironmentExists,
    EnvironmentNotEmpty,
    EnvironmentNotFound,
)
from nova.store import Store
from nova.store.tenancy_ports import EnvironmentRecord
from tests.store.test_store_functions import HELLO, config

PROD = Environment("acme", "shop", "prod")
# A segment with SQL LIKE's wildcards would match too much if they were not escaped; '-' is
# the only punctuation a segment may hold, so a near-miss name is the test here.
NEAR = Environment("acme", "shop", "prod-eu")


def _record(environment: Environment, quotas: Quotas | None = None) -> EnvironmentRecord:
    return EnvironmentRecord(environment, quotas or Quotas(), datetime.now(UTC))


async def test_create_get_list_quotas_delete(store: Store) -> None:
    assert (await store.environments.get(DEFAULT_ENVIRONMENT)).quotas == Quotas()
    await store.environments.create(_record(PROD, Quotas(max_functions=5)))
    with pytest.raises(EnvironmentExists):
        await store.environments.create(_record(PROD))
    assert (await store.environments.get(PROD)).quotas == Quotas(max_functions=5)
    listed = [r.environment for r in await store.environments.list()]
    assert listed == [PROD, DEFAULT_ENVIRONMENT]
    changed = await store.environments.set_quotas(PROD, Quotas(log_retention_days=1.5))
    assert changed.quotas == Quotas(log_retention_days=1.5)
    assert (await store.environments.get(PROD)).quotas == Quotas(log_retention_days=1.5)
    await store.environments.delete(PROD)
    with pytest.raises(EnvironmentNotFound):
        await store.environments.get(PROD)
    with pytest.raises(EnvironmentNotFound):
        await store.environments.delete(PROD)
    with pytest.raises(EnvironmentNotFound):
        await store.environments.set_quotas(PROD, Quotas())


async def test_delete_refuses_while_functions_or_secrets_remain(store: Store) -> None:
    await store.environments.create(_record(PROD))
    await store.environments.create(_record(NEAR))
    await store.functions.create(config(PROD.full_name("hello")), HELLO)
    await store.secrets.put(SealedSecret(PROD.secret_name("token"), b"c", b"n" * 12, "k1"))
    with pytest.raises(EnvironmentNotEmpty, match=r"1 function\(s\) and 1 secret\(s\)"):
        await store.environments.delete(PROD)
    await store.environments.delete(NEAR)  # prod's function and secret are not prod-eu's
    await store.functions.delete(PROD.full_name("hello"))
    await store.secrets.delete(PROD.secret_name("token"))
    await store.environments.delete(PROD)


async def test_lists_keep_to_one_environment(store: Store) -> None:
    for environment in (DEFAULT_ENVIRONMENT, PROD, NEAR):
        await store.functions.create(config(environment.full_name("hello")), HELLO)
        sealed = SealedSecret(environment.secret_name("token"), b"c", b"n" * 12, "k1")
        await store.secrets.put(sealed)
    for environment in (DEFAULT_ENVIRONMENT, PROD, NEAR):
        functions = await store.functions.list(environment=environment)
        assert [f.name for f in functions.items] == [environment.full_name("hello")]
        secrets = await store.secrets.list(environment=environment)
        assert [s.name for s in secrets.items] == [environment.secret_name("token")]
    everything = await store.functions.list()
    assert len(everything.items) == 3
