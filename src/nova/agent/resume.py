"""Inside a restored VM snapshot: the clock and the kernel RNG from the host's values.

Every VM restored from one snapshot starts with the snapshot's wall clock and the same kernel
RNG state, so two of them would hand out the same "random" bytes. The host sends the time and
fresh seed bytes (Resume); the agent, PID 1 and root inside the VM, sets the clock, credits the
seed to the kernel's pool (RNDADDENTROPY) and forces the CRNG to reseed from it at once
(RNDRESEEDCRNG): os.urandom differs from the next call on.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time

from nova.agent.errors import AgentError, ErrorType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RNDADDENTROPY = 0x40085203  # _IOW('R', 0x03, int[2])
RNDRESEEDCRNG = 0x5207  # _IO('R', 0x07)


def resume_guest(message: dict[str, Any]) -> None:
    try:
        time_ns = int(message["time_ns"])
        seed = bytes.fromhex(str(message["seed"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise AgentError(
            ErrorType.INVALID_MESSAGE, f"Resume needs time_ns and seed: {exc}"
        ) from exc
    if len(seed) < 16:
        raise AgentError(ErrorType.INVALID_MESSAGE, "Resume's seed must have at least 16 bytes")
    try:
        time.clock_settime_ns(time.CLOCK_REALTIME, time_ns)
        fd = os.open("/dev/urandom", os.O_WRONLY)
        try:
            info = struct.pack("ii", len(seed) * 8, len(seed)) + seed
            fcntl.ioctl(fd, RNDADDENTROPY, info)
            fcntl.ioctl(fd, RNDRESEEDCRNG)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AgentError(ErrorType.INVALID_MESSAGE, f"could not resume: {exc}") from exc
