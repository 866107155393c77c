from __future__ import annotations

from pathlib import Path

import pytest

from nova.images.fake import FakeBuilder
from nova.images.recipe import ImageRecipe, MountPoints, debian_recipes
from nova.images.store import ImageStore

MOUNTS = MountPoints(
    dirs=("/code", "/opt/nova/nova/agent", "/tmp"),
    files=("/opt/nova/nova/__init__.py", "/etc/hosts", "/etc/resolv.conf"),
)


@pytest.fixture
def recipes() -> dict[str, ImageRecipe]:
    return debian_recipes("bookworm", MOUNTS)


@pytest.fixture
def builder() -> FakeBuilder:
    return FakeBuilder()


@pytest.fixture
def store(tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder) -> ImageStore:
    return ImageStore(tmp_path / "images", recipes, builder)
