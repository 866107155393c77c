"""The agent's own diagnostics: one line each on stderr, which the sandbox backend collects.

Not the logging package: importing it costs ~8 ms on every cold start, and the agent only ever
reports a handful of rare events (a broken host stream, a worker that died while idle).
"""

from __future__ import annotations

import os
import sys


def report(message: str, *, with_traceback: bool = False) -> None:
    text = f"nova-agent[{os.getpid()}] {message}\n"
    if with_traceback:
        import traceback  # only on this rare path

        text += traceback.format_exc()
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        return  # no usable stderr (closed by the backend): nowhere left to report to
