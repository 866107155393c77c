"""The provided runner's bootstrap life, with real bootstrap processes and a recording channel."""

from __future__ import annotations

import queue
import sys
import time
from pathlib import Path
from typing import Any

from nova.agent.errors import ErrorType, error_object
from nova.agent.invocation import Invocation
from nova.agent.provided import ProvidedRunner
from nova.agent.spec import InitSpec

# Posts init/error, then hangs: only a fresh bootstrap can answer the next invocation.
INIT_FAILS = """#!{python}
import json, os, time, urllib.request
request = urllib.request.Request(
    "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/init/error",
    data=json.dumps({{"errorMessage": "CONFIG is not set", "errorType": "Config.Missing"}}).encode(),
    method="POST",
)
urllib.request.urlopen(request).read()
time.sleep(60)
"""

# Answers one event and exits, as one-shot bootstraps do.
ONE_SHOT = """#!{python}
import os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
with urllib.request.urlopen(api + "next") as event:
    request_id = event.headers["Lambda-Runtime-Aws-Request-Id"]
urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=b"1")).read()
"""


class RecordingChannel:
    max_message_bytes = 1 << 20

    def __init__(self) -> None:
        self.results: queue.Queue[tuple[object, dict[str, Any] | None]] = queue.Queue()

    def result(
        self,
        job: Invocation,
        output: Any,
        error: dict[str, Any] | None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        self.results.put((job.frame_id, error))

    def failure(
        self, job: Invocation, kind: ErrorType, message: str, stdout: str = "", stderr: str = ""
    ) -> None:
        self.result(job, None, error_object(kind, message), stdout, stderr)


def _runner(tmp_path: Path, channel: RecordingChannel, script: str) -> ProvidedRunner:
    code = tmp_path / "code"
    code.mkdir()
    bootstrap = code / "bootstrap"
    bootstrap.write_text(script.format(python=sys.executable))
    bootstrap.chmod(0o755)
    spec = InitSpec(
        runtime="provided",
        handler="handler",
        mode="persistent",
        code_dir=str(code),
        env={},
        function_name="fn",
        function_version="$LATEST",
        memory_mb=128,
        timeout_s=5.0,
        concurrency=1,
        interpreter="",
        tmp_dir=str(tmp_path),
        init_timeout_s=10.0,
    )
    return ProvidedRunner(spec, {"PATH": "/usr/bin:/bin"}, channel)  # type: ignore[arg-type]


def _job(frame_id: int) -> Invocation:
    return Invocation(
        {"event": {}}, b"{}", frame_id, f"r{frame_id}", time.time() * 1000 + 5000, None
    )


def test_an_invocation_right_after_an_init_error_gets_a_fresh_bootstrap(tmp_path: Path) -> None:
    channel = RecordingChannel()
    runner = _runner(tmp_path, channel, INIT_FAILS)
    runner.start()
    try:
        runner.submit(_job(1))
        assert channel.results.get(timeout=10)[1]["type"] == "Config.Missing"  # type: ignore[index]
        # The failed bootstrap's reaper is held off (the lock is reentrant for this thread),
        # as a loaded host may delay it past the next invocation's arrival.
        with runner._cond:
            runner.submit(_job(2))
        frame_id, error = channel.results.get(timeout=10)
        assert frame_id == 2
        assert error is not None
        assert (error["type"], error["message"]) == ("Config.Missing", "CONFIG is not set")
    finally:
        runner.stop()


def test_an_invocation_queued_behind_a_bootstrap_that_exits_gets_a_new_one(
    tmp_path: Path,
) -> None:
    channel = RecordingChannel()
    runner = _runner(tmp_path, channel, ONE_SHOT)
    runner.start()
    try:
        runner.submit(_job(1))
        assert channel.results.get(timeout=10) == (1, None)
        with runner._cond:  # queued before the exiting bootstrap's reaper runs
            runner.submit(_job(2))
        assert channel.results.get(timeout=10) == (2, None)
    finally:
        runner.stop()
