"""The Runner port: what the agent's frame loop needs from an execution mode (MISSION F5).

``persistent`` keeps ``concurrency`` long-lived workers; ``process`` starts a fresh process per
invocation. Both answer every Invocation they accept exactly once, through the Channel.
"""

from __future__ import annotations

from collections.abc import Mapping

from nova.agent.channel import Channel
from nova.agent.invocation import Invocation
from nova.agent.spec import RUNTIME_API_RUNTIMES, InitSpec

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # only the type checker needs the port; typing costs start-up time
    from typing import Protocol

    class Runner(Protocol):
        def start(self) -> None:
            """Start workers; raise AgentError(INIT_FAILED) if they cannot run."""
            ...

        def submit(self, job: Invocation) -> None:
            """Queue one invocation; never blocks on user code (called by the frame loop)."""
            ...

        def drain(self, timeout_s: float) -> bool:
            """Wait until nothing is queued or running; False if that took longer than timeout_s."""
            ...

        def stop(self) -> None:
            """Kill every worker, answer what is still open with Runtime.Stopped, join threads."""
            ...

    from nova.agent.provided import RuntimeClient


def make_runner(
    spec: InitSpec,
    env: Mapping[str, str],
    channel: Channel,
    prestarted: RuntimeClient | None = None,
) -> Runner:
    if spec.runtime in RUNTIME_API_RUNTIMES:
        from nova.agent.provided import ProvidedRunner

        return ProvidedRunner(spec, env, channel, prestarted)
    if spec.mode == "process":
        from nova.agent.oneshot import ProcessRunner

        return ProcessRunner(spec, env, channel)
    from nova.agent.persistent import PersistentRunner

    return PersistentRunner(spec, env, channel)
