"""How far a build is: debootstrap's ``I:`` lines turned into a monotonic fraction.

debootstrap never announces how many packages it will fetch, so the download phase is measured
against the recipe's expected count until the first ``Extracting`` line; from then on the real
count (packages retrieved) is known. Phase weights follow a measured build of the python image
(26 s): index and dependency resolution ~20 %, downloads ~27 %, extraction ~9 %, dpkg's unpack
and configure ~43 %.

A typical run::

    I: Retrieving InRelease
    I: Resolving dependencies of required packages...
    I: Checking component main on http://deb.debian.org/debian...
    I: Retrieving libc6 2.36-9+deb12u14          } once per package
    I: Validating libc6 2.36-9+deb12u14          }
    I: Extracting libc6...                       once per required package
    I: Installing core packages...
    I: Unpacking libc6:amd64...                  } about once per package each
    I: Configuring libc6:amd64...                }
    I: Base system installed successfully.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BuildProgress:
    phase: str  # resolve | download | extract | install | finish | done
    fraction: float  # 0.0 .. 1.0, never decreasing within one build
    message: str
    done: int = 0
    total: int | None = None


ProgressSink = Callable[[BuildProgress], None]

# (phase, fraction at its start, fraction at its end)
_DOWNLOAD = (0.20, 0.47)
_EXTRACT = (0.48, 0.57)
_INSTALL = (0.58, 0.97)
FINISHING = 0.98  # trimming, mount points, versions: what the store does after debootstrap

_MILESTONES: tuple[tuple[re.Pattern[str], str, float, str], ...] = (
    (re.compile(r"^I: Retrieving (InRelease|Release)\b"), "resolve", 0.01, "fetching the index"),
    (re.compile(r"^I: (Retrieving|Validating) Packages\b"), "resolve", 0.03, "fetching the index"),
    (
        re.compile(r"^I: Resolving dependencies of required"),
        "resolve",
        0.05,
        "resolving dependencies",
    ),
    (re.compile(r"^I: Resolving dependencies of base"), "resolve", 0.10, "resolving dependencies"),
    (re.compile(r"^I: Checking component"), "resolve", 0.18, "resolving dependencies"),
    (re.compile(r"^I: Chosen extractor"), "extract", _EXTRACT[0], "extracting packages"),
    (re.compile(r"^I: Installing core packages"), "install", _INSTALL[0], "installing packages"),
    (re.compile(r"^I: Base system installed successfully"), "finish", FINISHING, "finishing"),
)
_PACKAGE_DOWNLOADED = re.compile(r"^I: Validating (\S+) (\S+)\s*$")
_EXTRACTING = re.compile(r"^I: Extracting \S+\.\.\.$")
_DPKG_STEP = re.compile(
    r"^I: (Unpacking|Configuring) (?!required packages|the base system)\S+\.\.\.$"
)


class DebootstrapProgress:
    """Feed it debootstrap's output lines; it returns a new BuildProgress when one changed."""

    def __init__(self, expected_packages: int) -> None:
        self._expected = max(1, expected_packages)
        self._downloaded = 0
        self._extracted = 0
        self._dpkg_steps = 0
        self._fraction = 0.0

    @property
    def packages(self) -> int:
        """Packages downloaded so far (the total once downloads are over)."""
        return self._downloaded

    def feed(self, line: str) -> BuildProgress | None:
        line = line.rstrip()
        for pattern, phase, fraction, message in _MILESTONES:
            if pattern.match(line):
                return self._at(phase, fraction, message)
        if _PACKAGE_DOWNLOADED.match(line):
            self._downloaded += 1
            total = max(self._expected, self._downloaded)
            return self._at(
                "download",
                _within(_DOWNLOAD, self._downloaded, total),
                "downloading packages",
                self._downloaded,
                total,
            )
        if _EXTRACTING.match(line):
            self._extracted += 1
            total = max(self._downloaded, self._extracted)
            return self._at(
                "extract",
                _within(_EXTRACT, self._extracted, total),
                "extracting packages",
                self._extracted,
                total,
            )
        if _DPKG_STEP.match(line):
            # Each package is unpacked and then configured: two steps per package.
            self._dpkg_steps += 1
            total = max(2 * self._downloaded, self._dpkg_steps)
            return self._at(
                "install",
                _within(_INSTALL, self._dpkg_steps, total),
                "installing packages",
                self._dpkg_steps // 2,
                total // 2,
            )
        return None

    def _at(
        self, phase: str, fraction: float, message: str, done: int = 0, total: int | None = None
    ) -> BuildProgress:
        self._fraction = max(self._fraction, fraction)
        return BuildProgress(phase, round(self._fraction, 4), message, done, total)


def _within(span: tuple[float, float], done: int, total: int) -> float:
    start, end = span
    return start + (end - start) * min(1.0, done / total)
