"""The loop that fires due schedules through the asynchronous event queue.

Every ``poll_s`` the daemon asks the store for enabled schedules whose next tick has come,
works out which ticks to run by the schedule's catch-up policy, and claims the tick with
``ScheduleRepository.fire``: the schedule's ``next_run_at`` moves forward and the events are
stored in the same transaction, conditional on ``next_run_at`` being what was read. A daemon
that loses that race changes nothing, so every tick runs once however many daemons share the
store; once stored, an event has the queue's retries and dead letters.

Catch-up after downtime (ticks between the stored ``next_run_at`` and now):

- ``latest`` (default): the newest missed tick runs once; the older ones are counted as missed.
- ``none``: a tick runs only if it is at most ``grace_s`` late; the rest are missed.
- ``all``: every missed tick runs, oldest first, at most ``max_catch_up`` of them (the newest).

The event a function receives (``detail`` is the schedule's payload)::

    {"version": "0", "id": "<request id>", "source": "nova.schedule",
     "detail-type": "Scheduled Event", "time": "2026-12-06T03:00:00Z",
     "schedule_id": "<id>", "resources": ["schedule:<id>"], "detail": {...}}
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from nova.core import ids
from nova.core.errors import RequestInvalid
from nova.core.events import NewEvent
from nova.core.periodic import Periodic
from nova.core.triggers import CatchUp, Schedule
from nova.observability.trigger_metrics import TriggerMetrics
from nova.schedules.timing import Timing, parse
from nova.store.event_source_ports import ScheduleRepository

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_BATCH = 100  # due schedules read per round; more wait for the next round


@dataclass(frozen=True, slots=True)
class SchedulerLimits:
    poll_s: float = 1.0
    grace_s: float = 60.0
    max_catch_up: int = 100


class Scheduler:
    def __init__(
        self,
        schedules: ScheduleRepository,
        submitted: asyncio.Event,
        metrics: TriggerMetrics,
        limits: SchedulerLimits,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._schedules = schedules
        self._submitted = submitted  # wakes this daemon's async workers
        self._metrics = metrics
        self._limits = limits
        self._clock = clock
        self._loop = Periodic(
            "nova-scheduler", limits.poll_s, self.run_due, logger, "schedules not fired"
        )

    def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        await self._loop.close()

    async def run_due(self) -> int:
        """Fire every due schedule once; returns how many events were queued."""
        now = self._clock()
        queued = 0
        for schedule in await self._schedules.due(now, _BATCH):
            try:
                queued += await self._fire(schedule, now)
            except RequestInvalid as exc:  # e.g. a time zone this host's tzdata lacks
                logger.warning("schedule %s not fired: %s", schedule.id, exc.message)
        if queued:
            self._submitted.set()
        return queued

    async def _fire(self, schedule: Schedule, now: datetime) -> int:
        timing = parse(schedule.expression, schedule.timezone, schedule.next_run_at)
        late = self._late_ticks(schedule, timing, now)
        run = self._to_run(schedule.catch_up, late, now)
        events = [_event(schedule, tick) for tick in run]
        if not await self._schedules.fire(
            schedule.id, schedule.next_run_at, timing.next_after(now), events
        ):
            return 0  # another daemon claimed it, or it was paused or deleted meanwhile
        self._metrics.schedule_runs[schedule.function] += len(events)
        missed = timing.count(schedule.next_run_at, now) - len(run)
        if missed:
            self._metrics.schedule_missed[schedule.function] += missed
            logger.warning(
                "schedule %s (%s): %d tick(s) missed, catch_up %s ran %d",
                schedule.id,
                schedule.function,
                missed,
                schedule.catch_up.value,
                len(run),
            )
        return len(events)

    def _late_ticks(self, schedule: Schedule, timing: Timing, now: datetime) -> list[datetime]:
        """The newest ticks from ``next_run_at`` to now, newest first: at most
        ``max_catch_up`` (a week of ``@every 1s`` is not walked tick by tick)."""
        ticks: list[datetime] = []
        moment = now + timedelta(microseconds=1)
        while len(ticks) < self._limits.max_catch_up:
            moment = timing.previous(moment)
            if moment < schedule.next_run_at:
                break
            ticks.append(moment)
        return ticks

    def _to_run(self, policy: CatchUp, late: list[datetime], now: datetime) -> list[datetime]:
        if not late:
            return []
        if policy is CatchUp.ALL:
            return late[::-1]
        newest = late[0]
        if policy is CatchUp.NONE and (now - newest).total_seconds() > self._limits.grace_s:
            return []
        return [newest]


def _event(schedule: Schedule, tick: datetime) -> NewEvent:
    request_id = ids.request_id()
    body = {
        "version": "0",
        "id": request_id,
        "source": "nova.schedule",
        "detail-type": "Scheduled Event",
        "time": tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "schedule_id": schedule.id,
        "resources": [f"schedule:{schedule.id}"],
        "detail": orjson.Fragment(schedule.payload),
    }
    return NewEvent(
        id=request_id,
        function=schedule.function,
        qualifier=schedule.qualifier,
        payload=orjson.dumps(body),
        idempotency_key=f"schedule:{schedule.id}:{tick.isoformat()}",
        source=f"schedule:{schedule.id}",
    )
