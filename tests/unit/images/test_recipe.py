"""Recipes and the image policy."""

from __future__ import annotations

import pytest

from nova.images.recipe import ImageKind, ImagePolicy, ImageRecipe


def test_every_image_carries_python_for_the_agent(recipes: dict[str, ImageRecipe]) -> None:
    assert set(recipes) == {"python", "node"}
    for recipe in recipes.values():
        assert "python3" in recipe.packages  # python3-minimal lacks json and asyncio
        assert recipe.variant == "minbase"
    assert recipes["node"].interpreter == "/usr/bin/node"


def test_the_digest_is_canonical(recipes: dict[str, ImageRecipe]) -> None:
    python = recipes["python"]
    reordered = ImageRecipe(
        runtime="python",
        packages=tuple(reversed(python.packages)),
        interpreter=python.interpreter,
        suite=python.suite,
        mount_points=python.mount_points,
    )
    assert reordered.digest == python.digest
    assert len(python.digest) == 64


def test_policy_defaults_to_the_host_and_takes_per_runtime_exceptions() -> None:
    assert ImagePolicy().kind_for("python") is ImageKind.HOST
    policy = ImagePolicy.parse("debian", {"node": "host"})
    assert policy.kind_for("python") is ImageKind.DEBIAN
    assert policy.kind_for("node") is ImageKind.HOST
    assert policy == ImagePolicy.parse("debian", {"node": "host"})  # comparable, hashable
    assert hash(policy)


def test_policy_refuses_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown image kind 'alpine'; kinds: host, debian"):
        ImagePolicy.parse("alpine")
