"""A function template: an agent that has imported the function's handler module (running its
module-level init code) and then only forks, one child per instance started from it.

``python -S -m nova.agent.template --fd 3 [--max-message-bytes M]``. The host connection on fd 3
carries, in order::

    host -> template   Template frame {init: <the Init frame>, seccomp: hex, tmp_bytes: N}
    template -> host   reply {ok, sockets: [fds the init code left open], init_ms}
    then single bytes:
    host -> template   b"f" + one fd (SCM_RIGHTS): the new instance's end of its connection
    host -> template   b"p"                        ping; the template answers b"p"

A child becomes an instance on the fd it was given (see :func:`_become_instance`)::

    child    b"h" + SCM_CREDENTIALS   its pid, which the kernel translates for the host
    host     b"g"                     it is in its own cgroups now: go on
    then the agent protocol, with Init already done (the template's Init, copied by the fork).

What a child shares with its siblings is only what the template did before the first fork:
the interpreter, the imported modules and their state. Nothing random repeats: random's global
generator reseeds itself in every forked child (random registers that with os.register_at_fork),
uuid1 draws its clock sequence from it, uuid4 and secrets read the kernel (tested over 1,000
starts in tests/escape/test_snapshot_starts.py). The child closes the sockets the init code
opened, which would be one connection shared by every instance. ``hash()`` of str stays the
template's (PYTHONHASHSEED is fixed at interpreter start).
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback

from nova.agent.agent import Agent, FrameSource
from nova.agent.channel import Channel
from nova.agent.environment import function_environment
from nova.agent.errors import AgentError, ErrorType
from nova.agent.forked_worker import compile_ahead
from nova.agent.isolation import (
    CLONE_NEWCGROUP,
    INSTANCE_NAMESPACES,
    drop_privileges,
    loopback_up,
    private_mounts,
    unshare,
)
from nova.agent.launch import BOOTSTRAPS
from nova.agent.protocol import MsgType, ProtocolError, decode_body, read_frame
from nova.agent.spec import InitSpec, parse_init

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

FORK, PING, HELLO, GO = b"f", b"p", b"h", b"g"
CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid


class Template:
    def __init__(self, fd: int, max_message_bytes: int) -> None:
        self._fd = fd
        self._max = max_message_bytes
        self._init: dict[str, Any] = {}
        self._seccomp = b""
        self._tmp_bytes = 0
        self._sockets: list[int] = []  # fds of sockets the function's init code opened
        self._agent_env = dict(os.environ)

    def build(self) -> bool:
        """Read the Template frame, import the handler module, answer; False if it failed."""
        channel = Channel(self._fd, self._max)
        try:
            body = read_frame(FrameSource(self._fd), self._max)
        except (ProtocolError, OSError) as exc:
            print(f"nova-template: no Template frame: {exc}", file=sys.stderr)
            return False
        if body is None:
            return False
        message = decode_body(body)
        try:
            if message.get("type") != MsgType.TEMPLATE:
                raise AgentError(ErrorType.INVALID_MESSAGE, "expected a Template frame")
            self._init = message["init"]
            self._seccomp = bytes.fromhex(message["seccomp"])
            self._tmp_bytes = int(message["tmp_bytes"])
            started = time.perf_counter()
            self._preload(parse_init(self._init, os.environ))
        except AgentError as exc:
            channel.refuse(message.get("id"), exc)
            return False
        except (KeyError, TypeError, ValueError) as exc:
            channel.refuse(message.get("id"), AgentError(ErrorType.INVALID_MESSAGE, str(exc)))
            return False
        compile_ahead(BOOTSTRAPS["python"])  # what every child's worker runs first
        channel.reply(
            message.get("id"),
            sockets=self._sockets,
            init_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return True

    def _preload(self, spec: InitSpec) -> None:
        """Import the handler's module as its worker would: the function's environment, the
        code directory as cwd and first on sys.path. Its module-level code runs here, once."""
        if spec.runtime != "python" or spec.mode != "persistent":
            raise AgentError(ErrorType.INIT_FAILED, "only persistent Python functions fork")
        before = _socket_fds()
        env = function_environment(spec, os.environ)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(spec.code_dir)
        sys.path.insert(0, spec.code_dir)
        try:
            importlib.import_module(spec.handler.rpartition(".")[0].replace("/", "."))
        except Exception as exc:  # the function's own failure: a normal start reports it
            raise AgentError(ErrorType.INIT_FAILED, f"the handler module failed: {exc}") from exc
        finally:
            sys.path.remove(spec.code_dir)
            os.chdir(spec.tmp_dir)
            os.environ.clear()
            os.environ.update(self._agent_env)
        if threading.active_count() != 1:
            # A fork copies a thread's locks but not the thread: children could deadlock.
            raise AgentError(ErrorType.INIT_FAILED, "the init code started threads")
        self._sockets = sorted(_socket_fds() - before - {self._fd})

    def serve(self) -> int:
        """Fork an instance per request until the host closes the connection."""
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the forks' outers
        control = socket.socket(fileno=self._fd)
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(control, 1, 1)
            except OSError as exc:
                print(f"nova-template: {exc}", file=sys.stderr)
                return 1
            if not data:
                return 0
            if data == PING:
                control.sendall(PING)
            for fd in fds:
                if data == FORK:
                    self._fork(fd)
                os.close(fd)

    def _fork(self, conn_fd: int) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        try:
            pid = os.fork()
        except OSError as exc:  # the host sees the fd closed and starts the slow way
            print(f"nova-template: fork failed: {exc}", file=sys.stderr)
            return
        if pid == 0:
            code = 1
            try:
                code = self._become_instance(conn_fd)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)

    def _become_instance(self, conn_fd: int) -> int:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the agent waits for its workers
        unshare(INSTANCE_NAMESPACES)
        pid = os.fork()  # the new pid namespace is the children's: this child is its pid 1
        if pid:
            _wait_and_exit(pid)
        os.close(self._fd)  # the template's connection is not the instance's
        private_mounts(self._init["tmp_dir"], self._tmp_bytes)
        loopback_up()
        _close_sockets(self._sockets)
        conn = socket.socket(fileno=conn_fd)
        ucred = CREDENTIALS.pack(os.getpid(), os.getuid(), os.getgid())
        conn.sendmsg([HELLO], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, ucred)])
        if conn.recv(1) != GO:
            return 0  # the host gave up on this start
        unshare(CLONE_NEWCGROUP)  # after the host moved it: its cgroup is its root
        drop_privileges(self._seccomp)
        agent = Agent(conn.detach(), self._max)
        agent.initialise(self._init)
        return agent.serve()


def _wait_and_exit(pid: int) -> NoReturn:
    """The outer process of a child: waits for the instance (pid 1 of its namespace), as bwrap
    waits for its sandbox, holding nothing of the template's."""
    os.closerange(0, os.sysconf("SC_OPEN_MAX"))
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _socket_fds() -> set[int]:
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                found.add(int(name))
        except OSError:
            continue  # the fd of the listing itself, closed by now
    return found


def _close_sockets(fds: list[int]) -> None:
    """Put /dev/null on each fd instead of closing it: the fd number stays taken, so a socket
    object of the init code's can never close an unrelated file that reused the number."""
    if not fds:
        return
    null = os.open("/dev/null", os.O_RDWR)
    for fd in fds:
        os.dup2(null, fd, inheritable=False)
    os.close(null)
    print(
        f"nova: {len(fds)} socket(s) opened by the function's init code were closed in this "
        "instance (sockets cannot be shared between instances): open them in the handler",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    from nova.agent.__main__ import EXIT_USAGE, USAGE, UsageError, parse_args, schedule_as_batch

    try:
        fd, max_message_bytes = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"nova-template: {exc}\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    schedule_as_batch()  # inherited by every instance forked from it
    template = Template(fd, max_message_bytes)
    return template.serve() if template.build() else 1


if __name__ == "__main__":
    sys.exit(main())
