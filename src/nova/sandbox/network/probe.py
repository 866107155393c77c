"""Can container instances on this host have ``network: true``? Found once per options, by
starting one real networked sandbox, and shown in the backend's reason (GET /runtimes, /health).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox.base import BackendInfo, InstanceSpec
from nova.sandbox.container.probe import trial_argv
from nova.sandbox.container.setup import (
    ContainerOptions,
    HostPaths,
    open_instance_files,
)
from nova.sandbox.linux.seccomp import deny_filter
from nova.sandbox.network import rules
from nova.sandbox.network.networks import Networks, NetworkSupport

logger = logging.getLogger(__name__)

# nft lives in /usr/sbin, which an unprivileged daemon's PATH often lacks.
_TOOL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_PACKAGES = {"slirp4netns": "slirp4netns", "nft": "nftables", "nsenter": "util-linux"}


@dataclass(frozen=True, slots=True)
class NetworkProbe:
    support: NetworkSupport | None  # None: network: true is refused on this host
    summary: str  # "network: slirp4netns 1.2.0" or "network unavailable: <why>"


def with_network(info: BackendInfo, options: ContainerOptions) -> BackendInfo:
    """The container backend's info with the network probe's summary added to its reason."""
    if not info.available:
        return info
    found = probe_network(options)
    return dataclasses.replace(
        info, reason=f"{info.reason}; {found.summary}", supports_network=found.support is not None
    )


def networks_for(options: ContainerOptions) -> Networks | None:
    found = probe_network(options).support
    return Networks(found) if found is not None else None


@functools.cache
def probe_network(options: ContainerOptions) -> NetworkProbe:
    tools = {name: shutil.which(name, path=_TOOL_PATH) for name in _PACKAGES}
    missing = sorted(_PACKAGES[name] for name, path in tools.items() if path is None)
    if missing:
        return _unavailable(f"apt-get install {' '.join(missing)}")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return _unavailable(
            f"/dev/net/tun is missing or not usable by uid {os.geteuid()} "
            "(slirp4netns needs it; run the daemon as root or make it mode 0666)"
        )
    try:
        host = HostPaths.discover(options.sandbox_uid)
    except SandboxError as exc:
        return _unavailable(exc.message)
    slirp, nft, nsenter = (str(tools[name]) for name in ("slirp4netns", "nft", "nsenter"))
    version = _slirp_version(slirp)
    error = ""
    # Its own sandbox and seccomp filter where they work; plain slirp4netns where they do not
    # (e.g. a kernel that refuses the mount namespace it makes), said in the summary.
    for hardened in (True, False):
        support = NetworkSupport(slirp, nft, nsenter, version, hardened, os.geteuid() == 0)
        error = _trial(support, host, options)
        if not error:
            note = "" if hardened else " (without its sandbox and seccomp filter)"
            return NetworkProbe(support, f"network: slirp4netns {version}{note}")
        if hardened:
            logger.info("slirp4netns --enable-sandbox/--enable-seccomp failed here: %s", error)
    return _unavailable(f"a trial networked sandbox failed: {error}")


def _unavailable(why: str) -> NetworkProbe:
    return NetworkProbe(None, f"network unavailable: {why}")


def _slirp_version(slirp: str) -> str:
    try:
        out = subprocess.run(
            [slirp, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "(unknown version)"
    found = re.search(r"slirp4netns version (\S+)", out)
    return found.group(1) if found else "(unknown version)"


# Run inside the trial sandbox: tap0 exists and the firewall refuses the gateway (which slirp
# itself would answer with a refusal from the host side: ECONNREFUSED, not EHOSTUNREACH).
_TRIAL_CHECK = f"""
import errno, socket
names = [name for _, name in socket.if_nameindex()]
assert "{rules.TAP_NAME}" in names, names
s = socket.socket()
s.settimeout(3)
code = s.connect_ex(("{rules.GATEWAY}", 9))
assert code == errno.EHOSTUNREACH, "gateway not refused: " + errno.errorcode.get(code, str(code))
"""


def _trial(support: NetworkSupport, host: HostPaths, options: ContainerOptions) -> str:
    """Start the real chain with network and a command that proves it works; return why it
    failed, or "" when it did not."""
    with tempfile.TemporaryDirectory(prefix="nova-netprobe-") as scratch:
        work = Path(scratch)
        os.chmod(work, 0o755)
        (work / "code").mkdir(mode=0o755)
        spec = InstanceSpec(
            instance_id="netprobe",
            function_name="netprobe",
            runtime="python",
            interpreter=options.agent_python,
            code_dir=work / "code",
            work_dir=work,
            memory_mb=128,
            timeout_s=10,
            network=True,
        )
        network = Networks(support).open(spec.instance_id, work / "network.log")
        try:
            files = open_instance_files(
                spec, spec.code_dir, host, deny_filter(), sync_fds=network.sync_fds
            )
        except SandboxError as exc:
            network.close()
            return exc.message
        chain = trial_argv(host, options, files, _TRIAL_CHECK)
        process = None
        try:
            process = subprocess.Popen(
                chain,
                pass_fds=files.inherited,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            files.close()
            network.close_child_ends()
            network.attach_blocking()
            output, _ = process.communicate(timeout=10)
        except (OSError, SandboxError, subprocess.TimeoutExpired) as exc:
            return exc.message if isinstance(exc, SandboxError) else str(exc)
        finally:
            files.close()
            if process is not None and process.poll() is None:
                process.kill()  # before the network: its block fd's EOF would release bwrap
                process.wait()
            network.close()
        if process.returncode != 0:
            return output.decode(errors="replace").strip()[-500:] or f"exit {process.returncode}"
    return ""
