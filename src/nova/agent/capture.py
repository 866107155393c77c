"""Bounded capture of user stdout/stderr: the last 64 KiB of each stream per invocation.

Persistent workers write fds 1 and 2 into anonymous O_APPEND files the agent creates and shares
with them: C-level writes and child processes are captured too, the bootstrap reads each
invocation's tail without any extra process or thread, and the agent can still read what a
crashed worker wrote last. Process mode reads pipes instead and keeps the tail in a TailBuffer.
The bootstraps spell the limit and the truncation mark again; keep them in step.
"""

from __future__ import annotations

import fcntl
import os

CAPTURE_LIMIT = 64 * 1024
_MARK = "[nova: {} earlier bytes truncated]\n"


def open_capture_file(name: str, tmp_dir: str) -> int:
    """An anonymous, close-on-exec, append-only file; memfd where the kernel has it."""
    fd = open_anonymous_file(name, tmp_dir)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    return fd


def open_anonymous_file(name: str, tmp_dir: str) -> int:
    """An anonymous, close-on-exec file; memfd where the kernel has it."""
    try:
        return os.memfd_create(f"nova-{name}", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        import tempfile  # not on Linux: an unlinked file in the scratch directory

        fd, path = tempfile.mkstemp(prefix=f"nova-{name}-", dir=tmp_dir)
        os.unlink(path)
        return fd


def read_tail(fd: int) -> str:
    """What a capture file holds, as text, cut to its last CAPTURE_LIMIT bytes."""
    try:
        size = os.fstat(fd).st_size
        if not size:
            return ""
        keep = min(size, CAPTURE_LIMIT)
        return tail_text(os.pread(fd, keep, size - keep), size)
    except OSError as exc:
        return f"[nova: capture unreadable: {exc}]"


def tail_text(tail: bytes, total: int) -> str:
    text = tail.decode("utf-8", "replace")
    return text if total <= len(tail) else _MARK.format(total - len(tail)) + text


def last_lines(text: str, limit: int = 2048) -> str:
    """A short tail for error messages."""
    return text[-limit:].strip()


class TailBuffer:
    """Keeps the last CAPTURE_LIMIT bytes fed to it, and how many there were in all."""

    __slots__ = ("_data", "total")

    def __init__(self) -> None:
        self._data = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._data += chunk
        if len(self._data) > 2 * CAPTURE_LIMIT:
            del self._data[:-CAPTURE_LIMIT]

    def text(self) -> str:
        return tail_text(bytes(self._data[-CAPTURE_LIMIT:]), self.total)
