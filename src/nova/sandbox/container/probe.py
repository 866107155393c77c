"""Whether this host can run container instances: the checks and a trial sandbox, once."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox.base import BackendInfo, InstanceSpec
from nova.sandbox.container import bwrap as bw
from nova.sandbox.container.setup import (
    ContainerOptions,
    HostPaths,
    InstanceFiles,
    check_interpreter,
    host_setup,
    open_instance_files,
    wrapper_argv,
)
from nova.sandbox.linux.seccomp import deny_filter

ISOLATION = (
    "bubblewrap: user/pid/mount/net/ipc/uts namespaces, uid 65534, no capabilities, "
    "no_new_privs, seccomp deny list, read-only root, cgroup memory/pids/CPU limits, "
    "loopback-only network unless network: true (slirp4netns, no route to the host)"
)


@functools.cache
def probe(options: ContainerOptions) -> BackendInfo:
    def result(available: bool, reason: str) -> BackendInfo:
        return BackendInfo("container", available, reason, ISOLATION, supports_reload=True)

    if shutil.which("bwrap") is None:
        return result(False, "bwrap not installed: apt-get install bubblewrap")
    try:
        deny_filter()
        host, cgroups = host_setup(options)
        check_interpreter(options.agent_python, host)
    except SandboxError as exc:
        return result(False, exc.message)
    error = _trial_run(host, options)
    if error:
        return result(False, f"a trial sandbox failed: {error}")
    limits = f"with cgroup v{cgroups.version} limits" if cgroups else "WITHOUT cgroup limits"
    return result(True, f"bubblewrap works on this host ({limits})")


# Run inside the trial sandbox: fails unless the identity, privileges and filter are in place.
_TRIAL_CHECK = f"""
import os
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
assert os.getuid() == {bw.SANDBOX_UID}, "uid"
assert status["CapEff"].strip() == "0000000000000000", "capabilities"
assert status["NoNewPrivs"].strip() == "1", "no_new_privs"
assert status["Seccomp"].strip() == "2", "seccomp"
assert os.listdir("/code") == [], "code dir"
"""


def trial_argv(
    host: HostPaths, options: ContainerOptions, files: InstanceFiles, script: str
) -> list[str]:
    """The real start chain (wrapper, privilege drop, bwrap), minus cgroups, running ``script``
    under the agent's interpreter instead of the agent: what the probes start once."""
    argv = bw.bwrap_argv(
        host.bwrap,
        host.layout,
        files.mounts,
        tmp_bytes=1 << 20,
        env={},
        command=[options.agent_python, "-S", "-c", script],
    )
    return wrapper_argv(
        host, open_files=options.open_files, fsize_bytes=1 << 20, procs_files=[], sandbox=argv
    )


def _trial_run(host: HostPaths, options: ContainerOptions) -> str | None:
    """Start the real chain (minus cgroups) with a command that proves the sandbox is in place;
    return why it failed, or None."""
    with tempfile.TemporaryDirectory(prefix="nova-probe-") as scratch:
        work = Path(scratch)
        os.chmod(work, 0o755)
        (work / "code").mkdir(mode=0o755)
        spec = InstanceSpec(
            instance_id="probe",
            function_name="probe",
            runtime="python",
            interpreter=options.agent_python,
            code_dir=work / "code",
            work_dir=work / "work",
            memory_mb=128,
            timeout_s=10,
            network=False,
        )
        try:
            files = open_instance_files(spec, spec.code_dir, host, deny_filter())
        except SandboxError as exc:
            return exc.message
        chain = trial_argv(host, options, files, _TRIAL_CHECK)
        try:
            done = subprocess.run(
                chain,
                pass_fds=files.inherited,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        finally:
            files.close()
        if done.returncode != 0:
            return done.stderr.decode(errors="replace").strip()[-500:] or f"exit {done.returncode}"
    return None
