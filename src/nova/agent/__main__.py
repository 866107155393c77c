"""``python -S -m nova.agent --fd N [--max-message-bytes M]``: the in-sandbox agent's entry point.

fd N is an already-connected stream to the host (a socket, or a character device such as a
virtio-serial port). This is the only place that maps outcomes to exit codes: 0 after Stop or
EOF, 2 for a bad command line, 3 when the host broke the frame stream, 4 when a direct-mode
worker died inside a frame or could not be restarted (the host then replaces the instance).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from nova.agent.agent import Agent
from nova.agent.protocol import DEFAULT_MAX_MESSAGE_BYTES

EXIT_USAGE = 2
USAGE = "usage: python -S -m nova.agent --fd N [--max-message-bytes M]"


class UsageError(Exception):
    pass


def parse_args(argv: Sequence[str]) -> tuple[int, int]:
    """(fd, max_message_bytes); a hand-rolled parser keeps argparse off the cold-start path."""
    options = {"--fd": None, "--max-message-bytes": str(DEFAULT_MAX_MESSAGE_BYTES)}
    items = list(argv)
    while items:
        name = items.pop(0)
        name, has_value, value = name.partition("=")
        if name not in options:
            raise UsageError(f"unknown option {name!r}")
        if not has_value:
            if not items:
                raise UsageError(f"{name} needs a value")
            value = items.pop(0)
        options[name] = value
    if options["--fd"] is None:
        raise UsageError("--fd is required")
    try:
        fd, limit = int(options["--fd"]), int(options["--max-message-bytes"] or "")
    except ValueError as exc:
        raise UsageError(f"--fd and --max-message-bytes take integers: {exc}") from exc
    if fd < 0 or limit < 1024:
        raise UsageError("--fd must be >= 0 and --max-message-bytes >= 1024")
    return fd, limit


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through Agent.serve, which kills the workers


def schedule_as_batch() -> None:
    """SCHED_BATCH for the agent and, inherited, every worker it starts: a worker woken by an
    Exec then does not preempt the daemon that sent it - the daemon's event loop is what every
    invocation on the host waits for - but runs on an idle CPU, or once the daemon blocks or
    its time slice ends. Measured: +2-16 % warm throughput under load, half the daemon's
    involuntary context switches (docs/performance.md). Unprivileged; where the call is
    missing or refused (other kernels, gVisor's emulation) the agent runs as it was."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        fd, max_message_bytes = parse_args(sys.argv[1:] if argv is None else argv)
        os.fstat(fd)
    except (UsageError, OSError) as exc:
        print(f"nova-agent: {exc}\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _terminate)
    schedule_as_batch()
    return Agent(fd, max_message_bytes).serve()


if __name__ == "__main__":
    sys.exit(main())
