"""The store's ports: what the rest of Nova may ask of persistence.

Everything above the store codes against these Protocols and the value types of
:mod:`nova.core.models`; no SQL, session or driver type ever crosses this line. Failures surface
as :mod:`nova.core.errors` values: ``FunctionNotFound``, ``FunctionAlreadyExists``,
``RequestInvalid`` (a malformed ``cursor`` or ``limit``), ``VersionNotFound``, ``VersionInUse``,
``AliasNotFound``, ``AliasConflict`` and ``StoreUnavailable`` (the database cannot be reached,
or the store was closed). The ports of event sources are in :mod:`nova.store.event_source_ports`,
those of authentication in :mod:`nova.store.auth_ports`. Every write of a function, version or alias appends to the change log in
its own transaction.

Lists are keyset-paginated: ``cursor`` is the opaque ``next`` of the previous page (``None`` for
the first page) and ``next`` is ``None`` on the last page.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from nova.core.builds import StoredBuild
from nova.core.changes import Change
from nova.core.events import AsyncEvent, AttemptError, EventFilter, NewEvent, QueueStats
from nova.core.models import CodeBundle, FunctionConfig, FunctionRecord, InvocationLog, Page
from nova.core.secrets import SealedSecret, SecretInfo
from nova.core.tenancy import Environment
from nova.core.versions import (
    AliasChange,
    AliasRecord,
    CanaryPolicy,
    ChangeReason,
    FunctionVersion,
    Routing,
)
from nova.store.timings import TransactionTimings

if TYPE_CHECKING:  # their modules import this one (DEFAULT_PAGE_LIMIT)
    from nova.store.auth_ports import ApiKeyRepository, AuditRepository
    from nova.store.event_source_ports import (
        RouteRepository,
        ScheduleRepository,
        TriggerRepository,
    )
    from nova.store.tenancy_ports import EnvironmentRepository

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000


class FunctionRepository(Protocol):
    async def create(self, config: FunctionConfig, code: CodeBundle) -> FunctionRecord:
        """Store a new function at revision 1; ``FunctionAlreadyExists`` if the name is taken."""
        ...

    async def get(self, name: str) -> FunctionRecord:
        """``FunctionNotFound`` if there is no such function."""
        ...

    async def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        environment: Environment | None = None,
    ) -> Page[FunctionRecord]:
        """Functions ordered by full name: those of ``environment``, or all for None."""
        ...

    async def update(
        self, name: str, config: FunctionConfig, code: CodeBundle | None
    ) -> FunctionRecord:
        """Replace the config (and all files when ``code`` is given); bumps ``revision``.

        ``config.name`` must equal ``name`` (``RequestInvalid`` otherwise): invocation logs are
        keyed by name, so a rename would orphan them.
        """
        ...

    async def delete(self, name: str) -> FunctionRecord:
        """Remove the function and its files and return what was removed; its invocation logs
        stay (they age out by the log retention)."""
        ...

    async def get_code(self, name: str) -> CodeBundle:
        """The function's current files; ``FunctionNotFound`` if there is no such function."""
        ...

    async def get_code_by_hash(self, function_id: str, code_hash: str) -> CodeBundle:
        """The files of one code hash the function's $LATEST or a version uses (an empty
        bundle when the function no longer has it: callers compare the bundle's hash)."""
        ...

    async def usage(self, environment: Environment) -> tuple[int, int]:
        """How many functions ``environment`` holds and the bytes of their current code
        together (published versions not counted): what its quotas are checked against."""
        ...


class VersionRepository(Protocol):
    async def publish(self, name: str, description: str) -> tuple[FunctionVersion, bool]:
        """Freeze $LATEST's code and config as the next version; ``(version, True)``. When
        neither changed since the newest version, that one and ``False`` (nothing written)."""
        ...

    async def get(self, name: str, number: int) -> FunctionVersion:
        """``FunctionNotFound`` or ``VersionNotFound``."""
        ...

    async def list(
        self, name: str, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[FunctionVersion]:
        """Versions in number order; ``FunctionNotFound`` if there is no such function."""
        ...

    async def delete(self, name: str, number: int) -> FunctionVersion:
        """``VersionInUse`` (naming the aliases) while an alias routes to it."""
        ...


class AliasRepository(Protocol):
    async def put(
        self,
        name: str,
        alias: str,
        routing: Routing,
        *,
        description: str = "",
        policy: CanaryPolicy | None = None,
        reason: ChangeReason = ChangeReason.MANUAL,
        detail: dict[str, Any] | None = None,
        expected_revision: int | None = None,
    ) -> AliasRecord:
        """Create or change the alias (routing already validated in shape); a history entry
        when the routing changes. ``VersionNotFound`` for a routed version that does not exist;
        ``AliasConflict`` when ``expected_revision`` is given and is not the alias's now."""
        ...

    async def rollback(self, name: str, alias: str) -> AliasRecord:
        """Restore the routing before the current one; ``AliasConflict`` if there is none."""
        ...

    async def get(self, name: str, alias: str) -> AliasRecord: ...

    async def of(self, name: str) -> list[AliasRecord]:
        """The function's aliases by name."""
        ...

    async def with_policy(self) -> list[AliasRecord]:
        """Every alias of every function that carries a canary policy."""
        ...

    async def delete(self, name: str, alias: str) -> AliasRecord: ...

    async def history(self, name: str, alias: str, limit: int = 50) -> list[AliasChange]:
        """Newest first; it outlives the alias (a deletion is its last entry)."""
        ...

    async def record_analysis(
        self, function_id: str, alias: str, analysis: dict[str, Any]
    ) -> None: ...


class ChangeLog(Protocol):
    async def head(self) -> int:
        """The newest sequence number (0 for an empty log)."""
        ...

    async def since(self, seq: int, limit: int = 500) -> list[Change]:
        """Entries after ``seq``, oldest first; numbers only grow, in commit order."""
        ...

    async def wait(self, timeout_s: float) -> None:
        """Return once a change may have been committed, or after ``timeout_s``."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete entries older than ``before``; returns how many."""
        ...


class InvocationLogRepository(Protocol):
    async def add_many(self, logs: Sequence[InvocationLog]) -> None:
        """Insert a batch in one transaction (the batcher flushes every 500 ms / 100 logs).

        Idempotent per ``id``: logs whose id is already stored are skipped, so a batch may be
        retried safely. ``ValueError`` if a ``created_at`` is naive or the database refuses a
        record's content; any other failure means the store is not taking writes right now.
        """
        ...

    async def list(
        self,
        *,
        function_name: str | None = None,
        function_id: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        environment: Environment | None = None,
    ) -> Page[InvocationLog]:
        """Newest first (``created_at`` desc, then ``id`` desc); ``function_id`` selects one
        function's records, ``function_name`` every function's that had that name."""
        ...

    async def outcomes(
        self, function_id: str, version: str, since: datetime
    ) -> tuple[Sequence[float], int]:
        """The handler durations (ms) of one version's invocations since ``since``, and how
        many of them failed: what canary analysis compares."""
        ...

    async def delete_older_than(
        self,
        cutoff: datetime,
        limit: int,
        *,
        environment: Environment | None = None,
        excluding: Sequence[Environment] = (),
    ) -> int:
        """Delete up to ``limit`` of the oldest records created before ``cutoff`` (an aware
        datetime); returns how many went. Retention calls it in rounds, so no single
        transaction holds the write lock for long. ``environment``: only that environment's
        records (by function name); ``excluding``: none of those environments' records (they
        have a retention of their own)."""
        ...

    async def delete_beyond_count(self, keep: int, limit: int) -> int:
        """Delete up to ``limit`` records of the functions that have more than ``keep``, the
        oldest first, so each function keeps its newest ``keep``; returns how many went.
        Called in rounds like ``delete_older_than``."""
        ...


class CounterRepository(Protocol):
    async def add(self, deltas: Mapping[str, int]) -> None:
        """Add ``deltas`` to the named totals in one transaction (a name not yet stored starts
        at 0). Several daemons sharing the store add to the same totals."""
        ...

    async def totals(self) -> dict[str, int]:
        """Every stored total by name."""
        ...


class EventQueue(Protocol):
    """The durable queue of asynchronous invocations (see :mod:`nova.core.events`).

    Workers hold what they claim under a lease: an event whose lease expires (its worker
    crashed, or lost the store) is claimed again, so every stored event runs at least once.
    Every finishing call names the claiming ``owner`` and is refused (returns False) when the
    lease has passed to another worker meanwhile, so a late worker never overwrites a newer
    attempt's outcome.
    """

    async def submit(
        self, event: NewEvent, dead: AttemptError | Sequence[AttemptError] | None = None
    ) -> tuple[str, bool]:
        """Store ``event`` as pending and return ``(its id, True)``. When the function
        already has an event with the same ``idempotency_key``, store nothing and return
        ``(that event's id, False)``. With ``dead``, the event goes straight to the dead
        letters with that error (it could not be run as it came: e.g. not JSON), or those
        errors (every attempt a queue trigger made), counted as its attempts.
        ``InvocationAlreadyExists`` when ``event.id`` is taken."""
        ...

    async def get(self, event_id: str) -> AsyncEvent:
        """``InvocationNotFound`` if there is no such event."""
        ...

    async def claim(
        self, owner: str, limit: int, lease_s: float, exclude: Sequence[str] = ()
    ) -> list[AsyncEvent]:
        """Up to ``limit`` events that are due (pending and past their backoff, or running
        with an expired lease), oldest due first, skipping functions named in ``exclude``;
        each becomes running under ``owner``'s lease with its attempt counted."""
        ...

    async def extend(self, owner: str, event_ids: Sequence[str], lease_s: float) -> None:
        """Renew ``owner``'s leases on the events it still holds among ``event_ids``."""
        ...

    async def succeed(
        self, event_id: str, owner: str, result: bytes, follow_up: NewEvent | None = None
    ) -> bool:
        """Finish the event as succeeded with ``result``; ``follow_up`` (an on-success
        destination's event) is stored in the same transaction."""
        ...

    async def retry(
        self, event_id: str, owner: str, error: AttemptError, result: bytes, at: datetime
    ) -> bool:
        """Record the failed attempt and make the event due again at ``at``."""
        ...

    async def bury(
        self,
        event_id: str,
        owner: str,
        error: AttemptError,
        result: bytes | None,
        follow_up: NewEvent | None = None,
    ) -> bool:
        """Record the last failed attempt and move the event to the dead letters;
        ``follow_up`` (an on-failure destination's event) is stored in the same transaction."""
        ...

    async def release(self, event_id: str, owner: str) -> bool:
        """Give a claimed event back untried (the daemon is shutting down): pending again
        and due now, its claim not counted as an attempt."""
        ...

    async def dead_letters(
        self,
        *,
        function: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[AsyncEvent]:
        """Dead events, most recently failed first."""
        ...

    async def replay(self, selection: EventFilter) -> int:
        """Make the selected dead events pending and due now with a fresh attempt count
        (their earlier errors are kept); returns how many."""
        ...

    async def purge(self, selection: EventFilter) -> int:
        """Delete the selected dead events; returns how many."""
        ...

    async def stats(self, now: datetime) -> QueueStats: ...

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` succeeded events finished before ``cutoff`` (dead ones stay
        until purged); returns how many."""
        ...


class SecretRepository(Protocol):
    """Sealed secrets by name. Setting or deleting one appends a ``secret.changed`` entry to
    the change log in the same transaction."""

    async def put(self, sealed: SealedSecret) -> tuple[SecretInfo, bool]:
        """Create or replace; ``(info, True)`` when it did not exist before."""
        ...

    async def get_many(self, names: Collection[str]) -> dict[str, SealedSecret]:
        """The stored ones among ``names`` (a missing name is simply absent)."""
        ...

    async def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        environment: Environment | None = None,
    ) -> Page[SecretInfo]:
        """Names and dates, ordered by name: those of ``environment``, or all for None."""
        ...

    async def delete(self, name: str) -> SecretInfo:
        """``SecretNotFound`` if there is no such secret."""
        ...

    async def reseal_all(self, reseal: Callable[[SealedSecret], SealedSecret]) -> int:
        """Replace every row by ``reseal(row)`` in one transaction (all or none); returns how
        many. A master-key rotation: the values do not change, so no change-log entry."""
        ...


class BuildRepository(Protocol):
    async def get(self, function_id: str) -> StoredBuild | None:
        """The function's compile state; None when none was recorded (or the function is gone)."""
        ...

    async def record(
        self, function_id: str, code_hash: str, status: str, output: str, key: str
    ) -> StoredBuild | None:
        """Record the function's latest build; a ``success`` also becomes its last good build,
        which any other status keeps. None (nothing recorded) when the function is gone."""
        ...


class Store(Protocol):
    # Read-only properties rather than plain attributes so that an implementation may expose a
    # concrete subtype (mypy treats mutable protocol attributes as invariant).
    @property
    def functions(self) -> FunctionRepository: ...

    @property
    def invocations(self) -> InvocationLogRepository: ...

    @property
    def versions(self) -> VersionRepository: ...

    @property
    def aliases(self) -> AliasRepository: ...

    @property
    def changes(self) -> ChangeLog: ...

    @property
    def counters(self) -> CounterRepository: ...

    @property
    def events(self) -> EventQueue: ...

    @property
    def secrets(self) -> SecretRepository: ...

    @property
    def triggers(self) -> TriggerRepository: ...

    @property
    def routes(self) -> RouteRepository: ...

    @property
    def schedules(self) -> ScheduleRepository: ...

    @property
    def builds(self) -> BuildRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def environments(self) -> EnvironmentRepository: ...

    @property
    def transaction_timings(self) -> TransactionTimings:
        """How long its transactions took (none are counted by a store without them)."""
        ...

    async def ping(self) -> None:
        """Round-trip to the database; ``StoreUnavailable`` if it cannot be reached."""
        ...

    async def close(self) -> None:
        """Release every connection. Idempotent; any later use raises ``StoreUnavailable``."""
        ...
