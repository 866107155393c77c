"""The real image builder: ``debootstrap --variant=minbase`` from the host's Debian mirror.

Needs root (debootstrap chroots, creates device nodes and owns files as root) and the
``debootstrap`` package. Output is streamed line by line into a progress sink; the last lines
are kept for the error message when it fails. The package versions come from the new root's
dpkg status file, read directly (no chroot, no dpkg on the host needed).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from nova.images.errors import ImageBuildFailed
from nova.images.progress import DebootstrapProgress, ProgressSink
from nova.images.recipe import ImageRecipe

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
_TAIL_LINES = 15
# Passed through to debootstrap (its wget honours them); nothing else of the daemon's env is.
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY")


class DebootstrapBuilder:
    def __init__(
        self, mirror: str, *, debootstrap: str = "debootstrap", timeout_s: float = 1200.0
    ) -> None:
        self._mirror = mirror
        self._debootstrap = debootstrap
        self._timeout_s = timeout_s

    @property
    def source(self) -> str:
        return self._mirror

    def argv(self, recipe: ImageRecipe, rootfs: Path) -> list[str]:
        return [
            self._debootstrap,
            f"--variant={recipe.variant}",
            f"--include={','.join(recipe.packages)}",
            recipe.suite,
            str(rootfs),
            self._mirror,
        ]

    def check(self) -> None:
        """ImageBuildFailed unless this host can run debootstrap at all."""
        if os.geteuid() != 0:
            raise ImageBuildFailed(
                "building a debian image needs root (debootstrap chroots and creates device "
                "nodes); run the daemon as root or use `sandbox.image: host`"
            )
        if shutil.which(self._debootstrap, path=_PATH) is None:
            raise ImageBuildFailed(
                "debootstrap is not installed: apt-get install debootstrap (or use "
                "`sandbox.image: host`)"
            )

    def build(
        self,
        recipe: ImageRecipe,
        rootfs: Path,
        progress: ProgressSink,
        cancel: threading.Event,
    ) -> dict[str, str]:
        self.check()
        parser = DebootstrapProgress(recipe.expected_packages)
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        env = {"PATH": _PATH, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
        env.update({k: os.environ[k] for k in _PROXY_VARIABLES if k in os.environ})
        try:
            process = subprocess.Popen(
                self.argv(recipe, rootfs),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                text=True,
                errors="replace",
                start_new_session=True,  # so the whole group can be stopped on cancel
            )
        except OSError as exc:
            raise ImageBuildFailed(f"cannot run debootstrap: {exc}") from exc
        stopper = _Stopper(process, cancel, self._timeout_s)
        stopper.start()
        try:
            assert process.stdout is not None  # stdout=PIPE
            for line in process.stdout:
                tail.append(line.rstrip())
                update = parser.feed(line)
                if update is not None:
                    progress(update)
            status = process.wait()
        finally:
            stopper.finish()
        if stopper.reason is not None:
            raise ImageBuildFailed(f"debootstrap stopped: {stopper.reason}")
        if status != 0:
            raise ImageBuildFailed(
                f"debootstrap exited with status {status}:\n"
                + "\n".join([*tail, *_log_tail(rootfs)])
            )
        return read_dpkg_status(rootfs / "var/lib/dpkg/status")


_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class _Stopper:
    """Kills debootstrap's process group when the build is cancelled or runs too long; a
    thread, because the builder's own thread is blocked reading debootstrap's output."""

    def __init__(self, process: subprocess.Popen[str], cancel: threading.Event, timeout_s: float):
        self._process = process
        self._cancel = cancel
        self._timeout_s = timeout_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="debootstrap-stopper", daemon=True)
        self.reason: str | None = None

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        waited = 0.0
        while not self._done.wait(0.2):
            waited += 0.2
            if self._cancel.is_set():
                self.reason = "the build was cancelled"
            elif waited >= self._timeout_s:
                self.reason = f"no result after {self._timeout_s:g} s"
            else:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            return


def _log_tail(rootfs: Path) -> list[str]:
    """debootstrap writes the details of a failure (dpkg's or wget's errors) to its own log."""
    try:
        lines = (rootfs / "debootstrap" / "debootstrap.log").read_text(errors="replace")
    except OSError:
        return []
    return ["--- debootstrap.log:", *lines.strip().splitlines()[-_TAIL_LINES:]]


def read_dpkg_status(path: Path) -> dict[str, str]:
    """Installed packages and their versions from a dpkg status file (what ``dpkg -l`` lists
    as ``ii``); ImageBuildFailed when it is missing or empty."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ImageBuildFailed(f"cannot read the package database {path}: {exc}") from exc
    packages: dict[str, str] = {}
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            arch = fields.get("Architecture", "")
            name = fields["Package"]
            # Multi-Arch: same packages may be installed for several architectures.
            key = f"{name}:{arch}" if fields.get("Multi-Arch") == "same" and arch else name
            packages[key] = fields.get("Version", "")
    if not packages:
        raise ImageBuildFailed(f"no installed packages in {path}")
    return packages


def host_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """The host's Debian release: debootstrap and the host's keyring are known to work for it.
    Other distributions get Debian's current stable."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in os_release.read_text().splitlines():
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip().strip('"')
    if fields.get("ID") == "debian" and fields.get("VERSION_CODENAME"):
        return fields["VERSION_CODENAME"]
    return DEFAULT_SUITE


def host_mirror(suite: str, apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive the host's apt uses for ``suite`` (deb822 ``.sources`` or one-line
    ``.list`` files), so images come from the same (possibly local or proxied) mirror."""
    files = [apt_dir / "sources.list"]
    with contextlib.suppress(OSError):
        files += sorted((apt_dir / "sources.list.d").iterdir())
    for file in files:
        try:
            text = file.read_text(errors="replace")
        except OSError:
            continue
        if file.suffix == ".sources":
            found = _deb822_mirror(text, suite)
        elif file.suffix == ".list" or file.name == "sources.list":
            found = _one_line_mirror(text, suite)
        else:
            continue
        if found:
            return found
    return DEFAULT_MIRROR


def _deb822_mirror(text: str, suite: str) -> str | None:
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes") == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            uris = fields.get("uris", "").split()
            if uris:
                return uris[0]
    return None


def _one_line_mirror(text: str, suite: str) -> str | None:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] != ["deb"]:
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2 and words[1] == suite:
            return words[0]
    return None
