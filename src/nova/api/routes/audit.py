"""The audit log (F27): GET /audit, newest first, with filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request

from nova.api.routes.functions import services
from nova.api.tenancy import chosen_environment
from nova.core.audit import AuditEntry, AuditFilter

router = APIRouter(tags=["audit"])


def entry_out(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": {"id": entry.actor_id, "name": entry.actor_name},
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "status": entry.status,
        "source_ip": entry.source_ip,
        "environment": entry.environment,
    }


@router.get("/audit", summary="The audit log: changes and refused requests, newest first")
async def list_audit(
    request: Request,
    actor: str | None = Query(None, description="a key name"),
    action: str | None = Query(None, description="exact, or a prefix ending in '.'"),
    target: str | None = None,
    outcome: str | None = Query(None, description="'ok', 'denied' (any failure) or a code"),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
    environment: str | None = Query(
        None,
        description="org/project/env, or '*' for every one; default: the request's own when it "
        "names one (a key bound to an environment sees only its own), else every one",
    ),
) -> dict[str, Any]:
    chosen = chosen_environment(request.scope, environment)
    selection = AuditFilter(
        actor,
        action,
        target,
        outcome,
        _aware(since),
        _aware(until),
        chosen.path if chosen is not None else None,
    )
    page = await services(request).audit.list(selection, limit, cursor)
    return {"items": [entry_out(entry) for entry in page.items], "next": page.next}


def _aware(value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC (the store refuses naive times)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
