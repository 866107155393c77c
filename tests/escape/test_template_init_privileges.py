"""The module-level init code of a function runs in its template, which keeps the capabilities
its forks need to make their namespaces. That code must not be able to do what a handler in a
normal instance cannot: the template's seccomp filter lets through only the unshare and mount
calls the forks make (README, Snapshots), everything else an instance is refused stays refused.
"""

from __future__ import annotations

import uuid
from errno import EPERM
from pathlib import Path
from typing import Any

import pytest

from nova.sandbox.container.forked import ForkedInstance
from tests.escape.test_snapshot_starts import Snapshots

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("container_available"),
]

# Each probe is one call an attacker would want; its value is the errno it got (0: it worked).
PROBES = """
import ctypes, errno, os, socket

libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_MOVE, MS_SHARED = 1, 32, 4096, 8192, 1 << 20
CLONE_NEWUSER, CLONE_NEWTIME = 0x10000000, 0x80
SYS = {"bpf": 321, "keyctl": 250, "userfaultfd": 323, "setns": 308, "pivot_root": 155,
       "perf_event_open": 298, "unshare": 272, "ptrace": 101}


def call(result):
    return 0 if result == 0 or result > 0 else ctypes.get_errno()


def mount(source, target, fstype, flags):
    return call(libc.mount(source.encode(), target.encode(),
                           fstype.encode() if fstype else None, flags, None))


def netfilter():
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12).close()
        return 0
    except OSError as exc:
        return exc.errno


def probe():
    return {
        "unshare a user namespace": call(libc.syscall(SYS["unshare"], CLONE_NEWUSER)),
        "unshare a time namespace": call(libc.syscall(SYS["unshare"], CLONE_NEWTIME)),
        "remount /code writable": mount("none", "/code", None, MS_REMOUNT | MS_BIND),
        "remount / writable": mount("none", "/", None, MS_REMOUNT),
        "move a mount": mount("/tmp", "/code", None, MS_MOVE),
        "share mounts with the host": mount("none", "/", None, MS_SHARED),
        "unmount /code": call(libc.umount2(b"/code", 2)),
        "chroot": call(libc.chroot(b"/tmp")),
        "pivot_root": call(libc.syscall(SYS["pivot_root"], b"/tmp", b"/tmp")),
        "setns": call(libc.syscall(SYS["setns"], 0, 0)),
        "bpf": call(libc.syscall(SYS["bpf"], 0, 0, 0)),
        "keyctl": call(libc.syscall(SYS["keyctl"], 0, 0)),
        "userfaultfd": call(libc.syscall(SYS["userfaultfd"], 0)),
        "perf_event_open": call(libc.syscall(SYS["perf_event_open"], 0, 0, -1, -1, 0)),
        "ptrace": call(libc.syscall(SYS["ptrace"], 16, 1, 0, 0)),
        "netfilter netlink": netfilter(),
    }


AT_INIT = probe()


def handler(event, context):
    return {"init": AT_INIT, "handler": probe()}
"""


async def _call(snapshots: Snapshots, spec: Any) -> Any:
    session = await snapshots.start(spec)
    reply = await session.request(
        {"type": 2, "event": {}, "request_id": str(uuid.uuid4())}, timeout_s=20
    )
    assert reply.get("error") is None, reply
    return session, reply["output"]


async def test_init_code_in_a_template_is_refused_what_an_instance_is_refused(
    workspace: Path,
) -> None:
    snapshots = Snapshots(workspace)
    try:
        await _compare(snapshots)
    finally:
        await snapshots.close()


async def _compare(snapshots: Snapshots) -> None:
    code_dir = snapshots.code(PROBES)
    spec = snapshots.spec(code_dir)
    await snapshots.manager.create(spec)
    forked, in_template = await _call(snapshots, snapshots.spec(code_dir, key=spec.init_key))
    assert isinstance(forked.instance, ForkedInstance)
    slow, normal = await _call(snapshots, snapshots.spec(code_dir, key="no template"))
    assert not isinstance(slow.instance, ForkedInstance)

    # Whatever a normal instance's code is refused, the template's init code is refused too
    # (a normal instance may open a netfilter netlink socket, useless without capabilities;
    # the template, which has CAP_NET_ADMIN over its own network, may not).
    allowed_at_init = {name for name, errno in in_template["init"].items() if errno == 0}
    allowed_normally = {name for name, errno in normal["init"].items() if errno == 0}
    assert allowed_at_init <= allowed_normally - {"netfilter netlink"}
    assert allowed_normally <= {"netfilter netlink"}
    # ...and a forked instance's handler is refused what a normal handler is (and netfilter
    # netlink: it runs under both filters, the template's and the instance's).
    assert in_template["handler"] == {**normal["handler"], "netfilter netlink": EPERM}
