"""HTTP bodies (pydantic: the only place it is used besides settings)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from nova.core.models import ExecutionMode, FunctionRecord
from nova.core.tenancy import environment_of, short_name
from nova.runtimes.compiler import CompileState

# The pattern is checked by validate_function_name, whose message says what a name may contain.
FunctionName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class FunctionFields(BaseModel):
    """Fields shared by create and update; everything optional here, required ones in Create.

    Only types are checked here: the bounds of every field are functions/rules.py's, applied to
    the merged config on create and update alike."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    runtime: str | None = None
    handler: str | None = None
    memory_mb: int | None = None
    timeout_s: float | None = None
    env: dict[str, str] | None = None
    mode: ExecutionMode | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    instance_concurrency: int | None = None
    backend: str | None = None
    network: bool | None = None
    description: str | None = None
    async_retry: dict[str, dict[str, float]] | None = None
    async_max_age_s: float | None = None
    on_success: str | None = None
    on_failure: str | None = None
    code: str | None = None
    files: dict[str, str] | None = None
    code_path: str | None = None

    def config_fields(self) -> dict[str, Any]:
        """The set fields that belong to FunctionConfig (not the code)."""
        data = self.model_dump(exclude_unset=True, exclude={"code", "files", "code_path"})
        return {key: value for key, value in data.items() if value is not None}


class FunctionCreate(FunctionFields):
    name: FunctionName
    runtime: str


class FunctionPatch(FunctionFields):
    name: FunctionName | None = None


class InvocationErrorOut(BaseModel):
    type: str = Field(description="the exception's type, or Function.* / Runtime.*")
    message: str
    stack: list[str] = Field(description="the user's frames only")


class InvokeResponse(BaseModel):
    """What POST /functions/{name}/invoke answers (serialised by api/invoke.py, not by this
    model: it documents the shape)."""

    request_id: str
    output: Any = Field(description="the handler's return value; null when it failed")
    error: InvocationErrorOut | None
    duration_ms: float = Field(description="the handler's own time")
    total_ms: float = Field(
        description="the daemon's time from arrival to answer, with queueing and cold start"
    )
    cold_start: bool
    start: str = Field(
        description="warm, cold, prewarmed, snapshot or prestarted: how the instance started"
    )
    phases: dict[str, float | None] | None = Field(
        description="a cold or snapshot start's time: sandbox_ms, code_ms, runtime_ms, init_ms"
    )
    version: str = Field(description='the version that ran: "$LATEST" or a number')


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, dotted: Function.NotFound, Request.Invalid, ...")
    message: str


class ErrorResponse(BaseModel):
    """Every non-2xx body."""

    error: ErrorDetail


def function_out(record: FunctionRecord, compiled: CompileState | None = None) -> dict[str, Any]:
    """A function as the API shows it; ``compiled``: its build, for a compiled language."""
    config = record.config
    return {
        "id": record.id,
        "name": short_name(config.name),
        "environment": environment_of(config.name).path,
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
        "async_retry": {kind: dict(rule) for kind, rule in config.async_retry.items()},
        "async_max_age_s": config.async_max_age_s,
        "on_success": config.on_success,
        "on_failure": config.on_failure,
        "code_hash": record.code_hash,
        "code_size": record.code_size,
        "revision": record.revision,
        "version": "$LATEST",
        "compile_status": compiled.status if compiled is not None else None,
        "compile_output": compiled.output if compiled is not None else None,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }
