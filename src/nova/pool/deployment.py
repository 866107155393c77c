"""What a pool needs to know about the function it serves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nova.core.models import FunctionConfig


@dataclass(frozen=True, slots=True)
class Deployment:
    function_id: str
    config: FunctionConfig
    version: str
    code_hash: str
    code_dir: Path  # host directory with the materialised code of `code_hash`
    interpreter: str
    hot_reload: bool  # interpreted runtime on a backend whose agent can rewrite its code

    @property
    def name(self) -> str:
        return self.config.name
