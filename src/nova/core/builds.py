"""What the store keeps of a compiled function's builds, so a restarted daemon (or another one
sharing the store) knows them without building again."""

from __future__ import annotations

from dataclasses import dataclass

COMPILE_STATUSES = ("pending", "compiling", "success", "failed")


@dataclass(frozen=True, slots=True)
class StoredBuild:
    """A function's last build (of ``code_hash``: its status and the compiler's output) and the
    last one that succeeded, whose artefact ``good_key`` names (the build directory every
    daemon keeps under ``<data_dir>/compiled/``): its $LATEST serves that one while a newer
    build is failed."""

    function_id: str
    code_hash: str
    status: str  # one of COMPILE_STATUSES
    output: str
    key: str
    good_code_hash: str | None = None
    good_key: str | None = None
