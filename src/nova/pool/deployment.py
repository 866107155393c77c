"""What a pool needs to know about the function it serves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nova.core.models import FunctionConfig


@dataclass(frozen=True, slots=True)
class Deployment:
    """One (function, version) as a pool runs it: ``version`` is "$LATEST" or a number."""

    function_id: str
    config: FunctionConfig
    version: str
    code_hash: str
    code_dir: Path  # host directory with the materialised code of `code_hash`
    interpreter: str
    hot_reload: bool  # interpreted runtime on a backend that can replace an instance's code
    # $LATEST's revision in the store (0 for a published version, which never changes): a
    # deployment of an older revision than the pool's is late and ignored.
    revision: int = 0
    # What the agent runs it as when that is not config.runtime (a registered runtime runs as
    # `provided`: its bootstrap is part of the code).
    agent_runtime: str | None = None

    @property
    def name(self) -> str:
        return self.config.name
