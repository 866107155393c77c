"""The daemon's running totals: what ``/stats`` reports and the store keeps across restarts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(slots=True)
class DaemonCounters:
    """Counts since this daemon started; plain ints, bumped on the hot path without a lock
    (one event loop). ``cold_starts`` counts instances started because requests were
    waiting - one start that served ten waiting requests is one cold start, and ten
    ``waited_for_start``."""

    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    waited_for_start: int = 0  # invocations that waited for an instance to start
    cold_starts: int = 0  # instances started on demand
    prewarm_starts: int = 0  # instances started ahead of demand (min_replicas)
    failed_starts: int = 0
    async_accepted: int = 0  # asynchronous events stored (not counting idempotent repeats)
    async_succeeded: int = 0
    async_retries: int = 0  # failed attempts that will be tried again
    async_dead_lettered: int = 0  # events moved to the dead letters
    vm_restores: int = 0  # microvm instances started from a VM snapshot instead of a boot
    vm_restore_failures: int = 0  # snapshot restores that failed (the start booted instead)
    vm_snapshots: int = 0  # VM snapshots saved
    snapshot_starts: int = 0  # container instances forked from a function template
    snapshot_misses: int = 0  # starts that found no ready template (started the normal way)
    snapshot_fallbacks: int = 0  # starts a template could not serve (failed fork, secrets)
    snapshot_builds: int = 0  # function templates built
    snapshot_drops: int = 0  # templates dropped (changed, died, TTL, budget, deleted)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


COUNTER_NAMES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(DaemonCounters))
