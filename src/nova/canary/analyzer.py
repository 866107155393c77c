"""The loop that analyses every alias with a canary policy and applies what it decides.

Every ``check_interval_s`` each alias with a policy and two routed versions is judged on the
invocation records in the store (so every daemon sees the same numbers, and a restart loses
nothing); a promotion or rollback is written only against the alias revision the analysis
read, so when several daemons analyse the same alias exactly one change lands. The analysis
itself is stored on the alias for `nova alias status`; the decisions that change the routing
go into the alias's history with the numbers they were based on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from nova.canary.analysis import Outcomes, Verdict, analyse, roles
from nova.core.errors import AliasConflict
from nova.core.periodic import Periodic
from nova.core.versions import AliasRecord, ChangeReason
from nova.store.ports import Store

logger = logging.getLogger(__name__)


class CanaryAnalyzer:
    def __init__(
        self, store: Store, refresh: Callable[[str], Awaitable[None]], check_interval_s: float
    ) -> None:
        self._store = store
        self._refresh = refresh
        self._loop = Periodic(
            "canary-analyzer",
            check_interval_s,
            self.analyse_all,
            logger,
            "canary analysis skipped a round",
        )
        self.decisions = 0  # routing changes this daemon made

    def start(self) -> None:
        self._loop.start()

    async def analyse_all(self) -> None:
        for alias in await self._store.aliases.with_policy():
            if roles(alias.routing) is not None:
                await self.analyse(alias)

    async def analyse(self, alias: AliasRecord) -> None:
        policy = alias.policy
        pair = roles(alias.routing)
        if policy is None or pair is None:
            return
        stable_route, new_route = pair
        now = datetime.now(UTC)
        since = max(alias.updated_at, now - timedelta(seconds=policy.window_s))
        stable = await self._outcomes(alias.function_id, stable_route.version, since)
        new = await self._outcomes(alias.function_id, new_route.version, since)
        decision = analyse(alias, policy, stable, new, (now - alias.updated_at).total_seconds())
        record = {**decision.document(), "at": now.isoformat(), "revision": alias.revision}
        await self._store.aliases.record_analysis(alias.function_id, alias.name, record)
        if decision.verdict is Verdict.HOLD or decision.routing is None:
            return
        try:
            await self._store.aliases.put(
                alias.function_name,
                alias.name,
                decision.routing,
                description=alias.description,
                policy=policy,
                reason=ChangeReason.AUTOMATIC,
                detail=record,
                expected_revision=alias.revision,
            )
        except AliasConflict:
            return  # changed meanwhile (a person, or another daemon's analysis): judged anew
        self.decisions += 1
        log = logger.warning if decision.verdict is Verdict.ROLLBACK else logger.info
        log(
            "alias %s:%s %s: %s", alias.function_name, alias.name, decision.verdict, decision.reason
        )
        await self._refresh(alias.function_name)

    async def _outcomes(self, function_id: str, version: int, since: datetime) -> Outcomes:
        durations, errors = await self._store.invocations.outcomes(function_id, str(version), since)
        return Outcomes.of(durations, errors)

    async def close(self) -> None:
        await self._loop.close()
