"""Whether this host can run gVisor instances: the checks and a trial sandbox, once."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox.base import BackendInfo
from nova.sandbox.container import bwrap as bw
from nova.sandbox.gvisor.setup import (
    GvisorHost,
    GvisorOptions,
    check_interpreter,
    host_setup,
)
from nova.sandbox.gvisor.spec import SpecLimits, SpecMounts, oci_spec

ISOLATION = (
    "gVisor (runsc, ptrace platform): the function's syscalls are served by gVisor's own "
    "kernel, uid 65534, no capabilities, no_new_privs, seccomp deny list inside, read-only root, "
    "cgroup memory/CPU limits, process limit, no network"
)
# The ptrace platform starts in ~0.2 s here; a platform that cannot run (kvm under a software
# virtualizer) hangs instead of failing, so the trial has a deadline.
TRIAL_TIMEOUT_S = 20.0

# Run inside the trial sandbox: fails unless the identity, privileges and filter are in place.
_TRIAL_CHECK = f"""
import os
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
assert os.getuid() == {bw.SANDBOX_UID}, "uid"
assert status["CapEff"].strip() == "0000000000000000", "capabilities"
assert status["Seccomp"].strip() == "2", "seccomp"
assert os.listdir("/code") == [], "code dir"
assert not os.path.exists("/etc/shadow"), "/etc/shadow"
"""


@functools.cache
def probe(options: GvisorOptions) -> BackendInfo:
    def result(available: bool, reason: str) -> BackendInfo:
        return BackendInfo("gvisor", available, reason, ISOLATION, supports_reload=True)

    if shutil.which("runsc") is None:
        return result(False, "runsc not installed: apt-get install runsc")
    try:
        host, cgroups = host_setup(options)
        check_interpreter(options.agent_python, host)
    except SandboxError as exc:
        return result(False, exc.message)
    except OSError as exc:  # e.g. the base root cannot be written
        return result(False, f"cannot prepare gVisor instances: {exc}")
    error = _trial_run(host, options)
    if error:
        return result(False, f"runsc cannot start a sandbox here: {error}")
    limits = f"with cgroup v{cgroups.version} limits" if cgroups else "WITHOUT cgroup limits"
    return result(True, f"runsc works on this host ({options.platform} platform, {limits})")


def _trial_run(host: GvisorHost, options: GvisorOptions) -> str | None:
    """Start a real sandbox (minus cgroups) with a command that proves the isolation is in
    place; return why it failed, or None."""
    with tempfile.TemporaryDirectory(prefix="nova-gvisor-probe-") as scratch:
        work = Path(scratch)
        (work / "code").mkdir(mode=0o755)
        (work / "bundle").mkdir()
        config = oci_spec(
            str(host.base_root),
            host.layout,
            SpecMounts(str(work / "code"), str(host.agent_init), str(host.agent_dir)),
            SpecLimits(tmp_bytes=1 << 20, processes=options.pids_max, open_files=64),
            env={"PATH": "/usr/bin:/bin"},
            command=[options.agent_python, "-S", "-c", _TRIAL_CHECK],
        )
        (work / "bundle" / "config.json").write_text(json.dumps(config))
        container_id = f"nova-probe-{os.getpid()}"
        argv = host.runsc_argv(options.platform, work / "state", work / "bundle", container_id)
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=TRIAL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            # runsc's sandbox and gofer are attached: killing the parent (done by run) ends them.
            return f"the trial sandbox did not finish within {TRIAL_TIMEOUT_S:g} s"
        except OSError as exc:
            return str(exc)
        if done.returncode != 0:
            output = (done.stderr or done.stdout).decode(errors="replace").strip()
            return output[-500:] or f"exit {done.returncode}"
    return None
