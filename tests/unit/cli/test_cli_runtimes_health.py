"""`nova runtimes` and `nova health`."""

from __future__ import annotations

import json

from nova.cli.exit_codes import ExitCode

from .fakes import FakeApi, RunNova, error_body

RUNTIMES = {
    "items": [
        {"name": "python", "available": True, "version": "3.11.9", "extensions": [".py"]},
        {
            "name": "node",
            "available": False,
            "reason": "node not found on PATH",
            "version": None,
            "extensions": [".js", ".mjs"],
        },
    ],
    "next": None,
}


def test_runtimes_shows_a_table_with_reasons(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/runtimes", RUNTIMES)

    result = nova("runtimes")

    assert result.exit_code == ExitCode.OK, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RUNTIME", "AVAILABLE", "VERSION", "EXTENSIONS", "REASON"]
    assert lines[1].split() == ["python", "yes", "3.11.9", ".py"]
    assert lines[2].split()[:2] == ["node", "no"]
    assert lines[2].endswith("node not found on PATH")


def test_runtimes_json(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/runtimes", RUNTIMES)

    result = nova("--json", "runtimes")

    assert json.loads(result.stdout) == RUNTIMES


def test_health_ok(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/health", {"status": "ok", "checks": {"store": "ok"}})

    result = nova("health")

    assert result.exit_code == ExitCode.OK, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [["status", "ok"], ["checks.store", "ok"]]


def test_health_json(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/health", {"status": "ok"})

    result = nova("--json", "health")

    assert json.loads(result.stdout) == {"status": "ok"}


def test_an_unhealthy_daemon_prints_the_report_and_exits_server_error(
    nova: RunNova, api: FakeApi
) -> None:
    report = {"status": "degraded", "checks": {"store": "unreachable"}}
    api.on("GET", "/health", report, status=503)

    result = nova("--json", "health")

    assert result.exit_code == ExitCode.SERVER_ERROR
    assert json.loads(result.stdout) == report
    assert result.stderr == "error: the daemon reports itself degraded (HTTP 503)\n"


def test_a_shutting_down_daemon_is_an_ordinary_api_error(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/health", error_body("Daemon.ShuttingDown", "shutting down"), status=503)

    result = nova("health")

    assert result.exit_code == ExitCode.SERVER_ERROR
    assert result.stdout == ""
    assert result.stderr == "error: shutting down\n"


STATS = {
    "pools": [
        {
            "function": "hello",
            "instances": 2,
            "busy": 1,
            "idle": 1,
            "starting": 0,
            "waiting": 0,
            "started": 3,
        }
    ],
    "instances": 2,
    "busy": 1,
    "invocations": {
        "invocations": 40,
        "errors": 2,
        "timeouts": 1,
        "waited_for_start": 5,
        "cold_starts": 3,
        "prewarm_starts": 1,
        "failed_starts": 0,
        "persisted": True,
    },
    "inflight": 1,
    "logs": {
        "written": 39,
        "spooled": 7,
        "replayed": 5,
        "dropped": 0,
        "backlog": 2,
        "spool_bytes": 4096,
    },
}


def test_stats_shows_pools_and_counters(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/stats", STATS)

    result = nova("stats")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("GET", "/stats")]
    pool_row = next(line.split() for line in result.stdout.splitlines() if line.startswith("hello"))
    assert pool_row == ["hello", "2", "1", "1", "0", "0", "3"]
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["invocations", "40"] in lines
    assert ["cold", "starts", "3"] in lines
    assert ["waited", "for", "a", "start", "5"] in lines
    assert ["logs", "spooled", "7"] in lines
    assert ["logs", "replayed", "5"] in lines
    assert ["logs", "backlog", "2"] in lines
    assert json.loads(nova("--json", "stats").stdout) == STATS


def test_runtimes_lists_the_backends_with_the_default_and_reasons(
    nova: RunNova, api: FakeApi
) -> None:
    backends = [
        {"name": "container", "available": True, "reason": "bubblewrap works on this host"},
        {"name": "microvm", "available": False, "reason": "/dev/kvm is missing"},
    ]
    api.on("GET", "/runtimes", {**RUNTIMES, "backend": "container", "backends": backends})

    result = nova("runtimes")

    assert result.exit_code == ExitCode.OK, result.output
    lines = result.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("BACKEND")))
    assert lines[header].split() == ["BACKEND", "AVAILABLE", "DEFAULT", "REASON"]
    assert lines[header + 1].split()[:3] == ["container", "yes", "yes"]
    assert lines[header + 2].split()[:2] == ["microvm", "no"]
    assert lines[header + 2].endswith("/dev/kvm is missing")
