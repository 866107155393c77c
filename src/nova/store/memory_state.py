"""The state behind the in-memory store (nova.store.memory), shared by its repositories."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from nova.core.audit import AuditEntry
from nova.core.auth import ApiKey
from nova.core.builds import StoredBuild
from nova.core.changes import Change, ChangeKind
from nova.core.errors import StoreUnavailable
from nova.core.models import CodeBundle, FunctionRecord, InvocationLog
from nova.core.quotas import Quotas
from nova.core.secrets import SealedSecret, SecretInfo
from nova.core.tenancy import DEFAULT_ENVIRONMENT
from nova.core.triggers import FunctionUrlConfig, Route, Schedule
from nova.core.versions import AliasChange, AliasRecord, FunctionVersion
from nova.store.tenancy_ports import EnvironmentRecord


class MemoryState:
    """Everything the in-memory store holds, shared by its repositories."""

    def __init__(self) -> None:
        self.closed = False
        self.functions: dict[str, tuple[FunctionRecord, CodeBundle]] = {}
        self.logs: dict[str, InvocationLog] = {}
        self.codes: dict[tuple[str, str], CodeBundle] = {}  # (function id, code hash)
        self.versions: dict[str, dict[int, FunctionVersion]] = {}  # by function id
        self.last_version: dict[str, int] = {}
        self.aliases: dict[str, dict[str, AliasRecord]] = {}
        self.history: dict[tuple[str, str], list[AliasChange]] = {}
        self.changes: list[Change] = []
        self.counters: dict[str, int] = {}
        self.secrets: dict[str, tuple[SealedSecret, SecretInfo]] = {}
        self.routes: dict[str, Route] = {}
        self.function_urls: dict[str, FunctionUrlConfig] = {}  # by function name
        self.schedules: dict[str, Schedule] = {}
        self.builds: dict[str, StoredBuild] = {}  # by function id
        self.api_keys: dict[str, ApiKey] = {}  # by name
        self.audit: list[AuditEntry] = []
        default = EnvironmentRecord(DEFAULT_ENVIRONMENT, Quotas(), datetime.now(UTC))
        self.environments: dict[str, EnvironmentRecord] = {DEFAULT_ENVIRONMENT.path: default}
        self.changed = asyncio.Event()

    def check_open(self) -> None:
        if self.closed:
            raise StoreUnavailable("the in-memory store is closed")

    def record_change(
        self,
        kind: ChangeKind,
        function_id: str,
        name: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        secret: str | None = None,
        api_key: str | None = None,
    ) -> None:
        seq = self.changes[-1].seq + 1 if self.changes else 1
        at = datetime.now(UTC)
        self.changes.append(
            Change(seq, kind, function_id, name, version, alias, at, secret, api_key)
        )
        self.changed.set()

    def drop_triggers(self, name: str) -> None:
        """What the SQL store's ON DELETE CASCADE removes with a function's triggers."""
        self.function_urls.pop(name, None)
        for key in [key for key, route in self.routes.items() if route.spec.function == name]:
            del self.routes[key]
        for key in [key for key, sched in self.schedules.items() if sched.function == name]:
            del self.schedules[key]

    def drop_unused_code(self, function_id: str, latest_hash: str | None) -> None:
        in_use = {latest_hash} | {v.code_hash for v in self.versions.get(function_id, {}).values()}
        for key in [key for key in self.codes if key[0] == function_id]:
            if key[1] not in in_use:
                del self.codes[key]
