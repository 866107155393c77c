"""JSON logs name the invocation on each line written during it; no secret value and no part of
an event reaches a log line or a metric label."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.daemon_process import DaemonProcess

SECRET = "s3cr3t-value-8f2c"
EVENT_MARK = "event-body-mark-71d0"
CODE = """
import os

def handler(event, context):
    print("token", os.environ["TOKEN"], event["mark"])
    raise ValueError("failed with " + os.environ["TOKEN"] + " and " + event["mark"])
"""


def test_json_lines_carry_the_invocation_and_never_a_secret(tmp_path: Path) -> None:
    env = {"NOVA_LOG_FORMAT": "json", "NOVA_LOG_LEVEL": "debug"}
    daemon = DaemonProcess(tmp_path / "data", env=env).start()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        with daemon.client() as api:
            api.put("/secrets/tok", json={"value": SECRET}).raise_for_status()
            function = {
                "name": "leaky",
                "runtime": "python",
                "code": CODE,
                "env": {"TOKEN": "$SECRET:tok"},
            }
            api.post("/functions", json=function).raise_for_status()
            headers = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
            result = api.post(
                "/functions/leaky/invoke", json={"mark": EVENT_MARK}, headers=headers
            ).json()
            metrics = api.get("/metrics").text + api.get("/metrics/json").text
    finally:
        daemon.stop()
    assert result["error"]["type"] == "ValueError"
    assert SECRET not in json.dumps(result)  # scrubbed from the error (and the record)
    log = daemon.log()
    lines = [json.loads(text) for text in log.splitlines() if text.startswith("{")]
    assert lines
    mine = [entry for entry in lines if entry.get("request_id") == result["request_id"]]
    assert mine, "no log line was written during the invocation"
    assert all(
        (entry["function"], entry["version"], entry["trace_id"]) == ("leaky", "$LATEST", trace)
        for entry in mine
    )
    assert any("started instance" in entry["message"] for entry in mine)  # its cold start
    for text in (log, metrics):
        assert SECRET not in text
        assert EVENT_MARK not in text


FOLLOWED = """
def handler(event, context):
    print("seen", event["n"])
    if event.get("fail"):
        raise ValueError("no")
    return event["n"]
"""


def test_logs_follow_streams_only_what_the_filter_lets_through(tmp_path: Path) -> None:
    import subprocess

    from tests.e2e.daemon_process import NOVA

    daemon = DaemonProcess(tmp_path / "data").start()
    try:
        with daemon.client() as api:
            function = {"name": "followed", "runtime": "python", "code": FOLLOWED}
            api.post("/functions", json=function).raise_for_status()
            api.post("/functions/followed/invoke", json={"n": 0, "fail": True})  # before: not shown
            while not api.get("/functions/followed/logs").json()["items"]:
                time.sleep(0.05)  # stored (records are written in batches)
            command = [NOVA, "--endpoint", daemon.url, "--json", "logs", "followed", "--follow"]
            follower = subprocess.Popen(
                [*command, "--outcome", "error"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=daemon.cli_env,
            )
            try:
                assert follower.stderr is not None
                assert "following invocations of followed" in follower.stderr.readline()
                with api.stream(
                    "GET", "/invocations/stream", params={"function": "followed"}
                ) as raw:
                    lines = raw.iter_lines()
                    assert next(lines) == ": following"  # the stream is open
                    for n, fail in ((1, False), (2, True), (3, False), (4, True)):
                        api.post("/functions/followed/invoke", json={"n": n, "fail": fail})
                    streamed = []
                    while len(streamed) < 4:
                        line = next(lines)
                        if line.startswith("data: "):
                            streamed.append(json.loads(line[6:])["stdout"].strip())
                assert streamed == ["seen 1", "seen 2", "seen 3", "seen 4"]
                assert follower.stdout is not None
                shown = [json.loads(follower.stdout.readline()) for _ in range(2)]
                assert [entry["stdout"].strip() for entry in shown] == ["seen 2", "seen 4"]
                assert all(entry["error_type"] == "ValueError" for entry in shown)
            finally:
                follower.terminate()
                follower.wait(10)
            since = api.get(
                "/invocations/stream", params={"outcome": "maybe"}
            )  # an unknown outcome is refused before anything streams
            assert since.status_code == 422
    finally:
        assert daemon.stop() == 0  # an open stream does not hold up the shutdown
