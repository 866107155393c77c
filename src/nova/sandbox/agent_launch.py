"""How to start the Nova agent: the argv and environment every backend shares."""

from __future__ import annotations

from pathlib import Path

import nova

# The directory that contains the `nova` package; the agent needs only nova/__init__.py and
# nova/agent/ (stdlib only), so backends can bind just those into a sandbox.
PACKAGE_PARENT = Path(nova.__file__).resolve().parent.parent
AGENT_PACKAGE_DIR = PACKAGE_PARENT / "nova" / "agent"


def agent_argv(
    python: str, fd: int, max_message_bytes: int, module: str = "nova.agent"
) -> list[str]:
    """``module``: nova.agent.template for a function template (fork snapshots)."""
    # -S skips site-packages: the agent is stdlib-only and starts ~10 ms faster without it.
    return [
        python,
        "-S",
        "-m",
        module,
        "--fd",
        str(fd),
        "--max-message-bytes",
        str(max_message_bytes),
    ]


def agent_env(pythonpath: str, home: str) -> dict[str, str]:
    """A clean environment: nothing of the daemon's own environment leaks into instances."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": home,
        "LANG": "C.UTF-8",
    }
