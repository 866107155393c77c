"""The process backend: the agent as a plain child process with rlimits. Development only.

It isolates nothing beyond rlimits and a private working directory, so the daemon refuses it
unless `sandbox.allow_process_backend` is set (see nova.daemon). Its value is speed and running
anywhere; the container backend is the default where the host allows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import socket
import sys
import time
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox.agent_launch import PACKAGE_PARENT, agent_argv, agent_env
from nova.sandbox.base import BackendInfo, InstanceSpec, SandboxInstance
from nova.sandbox.instance_code import fill_code_dir, replace_code_dir
from nova.sandbox.process_tree import kill_tree

_OPEN_FILES = 1024
_MAX_FILE_BYTES = 512 * 1024 * 1024


def _limit_child() -> None:
    """Runs in the child between fork and exec: no core dumps, bounded files."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (_OPEN_FILES, _OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_FILE_BYTES, _MAX_FILE_BYTES))


class ProcessInstance:
    def __init__(
        self,
        process: asyncio.subprocess.Process,
        sock: socket.socket,
        spec: InstanceSpec,
        registry: dict[str, ProcessInstance],
    ) -> None:
        self._id = spec.instance_id
        self._registry = registry
        self._process = process
        self._sock = sock
        self._spec = spec
        self._killed = False
        self.code_ms: float | None = None

    @property
    def instance_id(self) -> str:
        return self._id

    @property
    def sock(self) -> socket.socket:
        return self._sock

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def code_dir(self) -> str:
        return str(self._spec.work_dir / "code")

    @property
    def tmp_dir(self) -> str:
        return str(self._spec.work_dir / "tmp")

    @property
    def image_id(self) -> str:
        return "host"  # the daemon host's own filesystem, unisolated

    def alive(self) -> bool:
        return not self._killed and self._process.returncode is None

    def oom_kills(self) -> int:
        return 0  # no memory cgroup in this backend

    async def replace_code(self, source: Path) -> None:
        await asyncio.to_thread(replace_code_dir, source, Path(self.code_dir))

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        self._registry.pop(self._id, None)
        # Workers lead sessions of their own, so a process-group kill would miss them.
        await asyncio.to_thread(kill_tree, self._process.pid)
        with contextlib.suppress(ProcessLookupError):
            await self._process.wait()
        self._sock.close()
        await asyncio.to_thread(shutil.rmtree, self._spec.work_dir, True)


class ProcessBackend:
    def __init__(self, max_message_bytes: int) -> None:
        self._max_message_bytes = max_message_bytes
        self._instances: dict[str, ProcessInstance] = {}

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(
            name="process",
            available=True,
            reason="always available; no isolation, for development only",
            isolation="none: a child process with rlimits (core, files, file size)",
            supports_reload=True,
            supports_network=True,  # it has the host's network: nothing to set up
        )

    async def start(self, spec: InstanceSpec) -> SandboxInstance:
        code_ms = await asyncio.to_thread(self._prepare_dirs, spec)
        host_end, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                *agent_argv(sys.executable, agent_end.fileno(), self._max_message_bytes),
                pass_fds=(agent_end.fileno(),),
                env=agent_env(str(PACKAGE_PARENT), str(spec.work_dir / "tmp")),
                cwd=spec.work_dir,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_limit_child,
            )
        except OSError as exc:
            host_end.close()
            raise SandboxError(
                f"could not start the agent for {spec.function_name}: {exc}"
            ) from exc
        finally:
            agent_end.close()
        host_end.setblocking(False)
        instance = ProcessInstance(process, host_end, spec, self._instances)
        instance.code_ms = code_ms
        self._instances[spec.instance_id] = instance
        return instance

    @staticmethod
    def _prepare_dirs(spec: InstanceSpec) -> float:
        """The work dir; returns the milliseconds placing the code took."""
        # A private copy of the code: a hot reload replaces it without touching other instances.
        spec.work_dir.mkdir(parents=True, exist_ok=True)
        placing = time.perf_counter()
        fill_code_dir(spec.code_dir, spec.work_dir / "code")
        code_ms = (time.perf_counter() - placing) * 1000
        (spec.work_dir / "tmp").mkdir(exist_ok=True)
        return code_ms

    async def close(self) -> None:
        await asyncio.gather(*(instance.kill() for instance in list(self._instances.values())))
