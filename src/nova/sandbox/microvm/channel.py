"""Which host↔guest channel carries the agent protocol, and why: shown with the accelerator.

The QEMU driver serves the agent's port over virtio-serial (a virtio-mmio console device, a
unix socket on the host): it needs nothing from the host kernel, and it survives a snapshot
and restore (the host connects before the restored guest runs). vsock would need
``/dev/vhost-vsock`` (the vhost_vsock module, usable with KVM); the QEMU driver does not
implement it, so the reason says what the host has and that virtio-serial carries the
protocol either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VIRTIO_SERIAL = "virtio-serial"


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    reason: str  # one line, part of the backend's reason (/health, `nova runtimes`, the log)


def vhost_vsock_present(root: Path = Path("/")) -> bool:
    return os.path.exists(root / "dev/vhost-vsock")


def choose_channel(vhost_vsock: bool) -> Channel:
    if not vhost_vsock:
        return Channel(VIRTIO_SERIAL, f"{VIRTIO_SERIAL} (vsock unavailable: no /dev/vhost-vsock)")
    return Channel(
        VIRTIO_SERIAL,
        f"{VIRTIO_SERIAL} (vsock unavailable: /dev/vhost-vsock exists but the QEMU driver "
        "has no vsock channel)",
    )
