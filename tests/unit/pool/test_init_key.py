"""The key a backend files an initialised instance's snapshot under (pool/launcher.init_key)."""

from __future__ import annotations

from nova.pool.launcher import init_key
from tests.unit.pool.conftest import MakeDeployment


def test_new_code_under_the_same_version_changes_the_key(make_deployment: MakeDeployment) -> None:
    # $LATEST after a code update: same version, same config, other code.
    assert init_key(make_deployment("v1")) != init_key(make_deployment("v2"))


def test_config_that_init_sees_changes_the_key(make_deployment: MakeDeployment) -> None:
    base = init_key(make_deployment())
    assert init_key(make_deployment(env={"A": "1"})) != base
    assert init_key(make_deployment(memory_mb=256)) != base
    assert init_key(make_deployment(handler="handler.other")) != base


def test_equal_deployments_share_a_key(make_deployment: MakeDeployment) -> None:
    assert init_key(make_deployment("v1")) == init_key(make_deployment("v1"))
