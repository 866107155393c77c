"""Full names: the bare name in the default environment, org.project.env.name elsewhere."""

from __future__ import annotations

import pytest

from nova.core.errors import RequestInvalid
from nova.core.tenancy import (
    DEFAULT_ENVIRONMENT,
    environment_of,
    parse_environment,
    secret_environment,
    short_name,
)


def test_the_default_environment_keeps_bare_names() -> None:
    assert DEFAULT_ENVIRONMENT.full_name("hello") == "hello"
    assert DEFAULT_ENVIRONMENT.holds("hello")
    assert not DEFAULT_ENVIRONMENT.holds("acme.shop.prod.hello")
    assert environment_of("hello") == DEFAULT_ENVIRONMENT


def test_another_environment_prefixes_and_splits_back() -> None:
    prod = parse_environment("acme/shop/prod")
    full = prod.full_name("hello")
    assert full == "acme.shop.prod.hello"
    assert environment_of(full) == prod
    assert short_name(full) == "hello"
    assert prod.holds(full)
    assert not prod.holds("hello")
    assert not parse_environment("acme/shop/staging").holds(full)


def test_secrets_are_named_per_environment() -> None:
    prod = parse_environment("acme/shop/prod")
    stored = prod.secret_name("db.password")
    assert stored == "acme/shop/prod/db.password"
    assert secret_environment(stored) == (prod, "db.password")
    assert secret_environment("db.password") == (DEFAULT_ENVIRONMENT, "db.password")
    assert prod.holds_secret(stored)
    assert not DEFAULT_ENVIRONMENT.holds_secret(stored)


@pytest.mark.parametrize("text", ["acme/shop", "acme/shop/prod/x", "Acme/shop/prod", "a.b/c/d", ""])
def test_malformed_environments_are_refused(text: str) -> None:
    with pytest.raises(RequestInvalid, match="organisation/project/environment"):
        parse_environment(text)
