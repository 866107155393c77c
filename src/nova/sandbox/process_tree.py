"""Killing a process and every descendant, including ones that left its session.

Agent workers run in sessions of their own (so a timeout can kill everything a handler spawned),
which a process-group kill does not reach. Walking /proc/<pid>/task/*/children finds them; each
process is stopped before its children are read, so nothing can fork a new child between the
scan and the kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def kill_tree(root: int) -> None:
    """SIGSTOP the tree top-down, then SIGKILL every process in it."""
    stopped: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        stopped.append(pid)
        pending.extend(_children(pid))
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
