"""Suite-wide set-up.

hypothesis is imported here, at the top of the collection, because its pytest plugin imports
it lazily in the terminal-summary hook otherwise: when no collected test uses it, that import
runs deep in pytest's stack, where CPython 3.11.0-3.11.4 (Debian 12 ships 3.11.2) fails to
compile it with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905)
and the run errors after its tests passed.

Under ``CI=true`` every skipped test fails instead: a test skips where a service, a program,
root or a kernel feature is missing, and CI has all of them, so a skip there means an install
step is missing - a green run must not hide it.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import hypothesis  # noqa: F401
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("true", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield  # a module that skips itself (pytest.skip(allow_module_level=True))
    _fail_skip_in_ci(outcome.get_result())


def _fail_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true, where everything it needs must be present: {reason}"
        )
