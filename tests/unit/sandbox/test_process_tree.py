"""kill_tree reaches descendants that left the root's session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from nova.sandbox.process_tree import kill_tree

# The child starts a grandchild in a new session (as agent workers are), prints its pid, waits.
SCRIPT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_kill_tree_kills_descendants_in_other_sessions() -> None:
    root = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert root.stdout is not None
    grandchild = int(root.stdout.readline())
    assert os.getsid(grandchild) != os.getsid(root.pid)
    kill_tree(root.pid)
    root.wait(5)
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
