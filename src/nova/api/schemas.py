"""HTTP bodies (pydantic: the only place it is used besides settings)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from nova.core.models import ExecutionMode, FunctionRecord

# The pattern is checked by validate_function_name, whose message says what a name may contain.
FunctionName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class FunctionFields(BaseModel):
    """Fields shared by create and update; everything optional here, required ones in Create."""

    model_config = ConfigDict(extra="forbid")

    runtime: str | None = Field(None, min_length=1, max_length=32)
    handler: str | None = Field(None, min_length=3, max_length=256)
    memory_mb: int | None = Field(None, ge=64, le=10240)
    timeout_s: float | None = Field(None, gt=0, le=900)
    env: dict[str, str] | None = None
    mode: ExecutionMode | None = None
    min_replicas: int | None = Field(None, ge=0, le=1000)
    max_replicas: int | None = Field(None, ge=1, le=1000)
    instance_concurrency: int | None = Field(None, ge=1, le=1000)
    backend: str | None = Field(None, max_length=32)
    network: bool | None = None
    description: str | None = Field(None, max_length=1024)
    code: str | None = None
    files: dict[str, str] | None = None
    code_path: str | None = None

    def config_fields(self) -> dict[str, Any]:
        """The set fields that belong to FunctionConfig (not the code)."""
        data = self.model_dump(exclude_unset=True, exclude={"code", "files", "code_path"})
        return {key: value for key, value in data.items() if value is not None}


class FunctionCreate(FunctionFields):
    name: FunctionName
    runtime: str = Field(min_length=1, max_length=32)


class FunctionPatch(FunctionFields):
    name: FunctionName | None = None


def function_out(record: FunctionRecord) -> dict[str, Any]:
    config = record.config
    return {
        "id": record.id,
        "name": config.name,
        "runtime": config.runtime,
        "handler": config.handler,
        "memory_mb": config.memory_mb,
        "timeout_s": config.timeout_s,
        "env": dict(config.env),
        "mode": config.mode.value,
        "min_replicas": config.min_replicas,
        "max_replicas": config.max_replicas,
        "instance_concurrency": config.instance_concurrency,
        "backend": config.backend,
        "network": config.network,
        "description": config.description,
        "code_hash": record.code_hash,
        "code_size": record.code_size,
        "revision": record.revision,
        "version": "$LATEST",
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }
