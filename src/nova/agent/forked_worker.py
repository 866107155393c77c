"""Starting a Python worker by forking the agent instead of spawning a fresh interpreter.

A spawned worker pays for a new interpreter, `site` and the bootstrap's imports (~20 ms on this
kind of host); a fork of the agent, which already has the interpreter up and json, io and os
imported, costs ~2 ms. It is used only when it is safe and equivalent:

- the function's interpreter is the very binary running the agent (containers and gVisor run
  the agent on the image's python3; the process backend does not, and keeps spawning);
- the agent has a single thread (at Init, before the runner starts its threads): a fork of a
  multi-threaded process could inherit locks held by threads that do not exist in the child.

The child then makes itself look like `python3 -S python_bootstrap.py …` started afresh: its
own session, default signal handlers, the same fds a spawned worker gets, the function's
environment and working directory, and no module of the agent's package; the bootstrap then
narrows sys.path to the code and the standard library, as it does in a spawned worker.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
import types
from collections.abc import Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import NoReturn


_compiled: dict[str, types.CodeType] = {}  # bootstrap path -> code, compiled ahead of Init


def compile_ahead(path: str) -> None:
    """Compile a bootstrap while the agent is idle (a standby instance waiting for Init), so
    the workers it forks later skip the ~3 ms compile on the cold-start path."""
    _compiled[path] = _compile(path)


def _compile(path: str) -> types.CodeType:
    with open(path, "rb") as file:
        return compile(file.read(), path, "exec", dont_inherit=True)


def _run_as_main(path: str) -> None:
    """What ``runpy.run_path(path, run_name="__main__")`` does, from a precompiled code object
    when there is one."""
    code = _compiled.get(path) or _compile(path)
    module = types.ModuleType("__main__")
    module.__file__ = path
    sys.modules["__main__"] = module
    exec(code, module.__dict__)


def can_fork_for(interpreter: str) -> bool:
    same_binary = os.path.realpath(interpreter) == os.path.realpath(sys.executable)
    return same_binary and threading.active_count() == 1


class ForkedProcess:
    """The subset of subprocess.Popen that WorkerProcess uses, for a forked child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        if timeout is not None and not self._exits_within(timeout):
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
        _, status = os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def _exits_within(self, timeout: float) -> bool:
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return True  # already reaped elsewhere: waitpid will say so
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            return bool(poller.poll(int(timeout * 1000)))
        finally:
            os.close(pidfd)


def fork_worker(
    argv: list[str],
    env: Mapping[str, str],
    cwd: str,
    fds: tuple[int, int, int],
    keep: tuple[int, ...],
) -> ForkedProcess:
    """Fork a worker running ``argv`` ([interpreter, options…, bootstrap, args…]) with ``fds`` as 0, 1, 2
    and the fds in ``keep`` open under their numbers (which must be above 2)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing of the agent's buffered output may be written twice
    pid = os.fork()
    if pid == 0:
        _run_as_worker(argv, env, cwd, fds, keep)
    return ForkedProcess(pid)


def _run_as_worker(
    argv: list[str],
    env: Mapping[str, str],
    cwd: str,
    fds: tuple[int, int, int],
    keep: tuple[int, ...],
) -> NoReturn:
    code = 1
    try:
        _become_worker(argv, env, cwd, fds, keep)
        _run_as_main(argv[_script_index(argv)])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a broken capture must not block the exit
                stream.flush()
        os._exit(code)  # never return into the agent's code


def _script_index(argv: list[str]) -> int:
    """Where the script is in ``[interpreter, *options, script, *args]``."""
    return next(index for index, arg in enumerate(argv) if index and not arg.startswith("-"))


def _become_worker(
    argv: list[str],
    env: Mapping[str, str],
    cwd: str,
    fds: tuple[int, int, int],
    keep: tuple[int, ...],
) -> None:
    os.setsid()  # like start_new_session: a timeout kills the worker's whole session
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for name in [name for name in sys.modules if name == "nova" or name.startswith("nova.")]:
        del sys.modules[name]  # user code must not import the agent
    # The bootstrap narrows sys.path to the code and the standard library, as in a spawned
    # worker; the agent's -S (which a spawned worker is given) already kept site-packages out.
    sys.argv = argv[_script_index(argv) :]
