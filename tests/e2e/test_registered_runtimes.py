"""POST /runtimes: a new interpreted language (here: Bash functions) with no change to Nova."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.e2e.daemon_process import DaemonProcess

# A Runtime API client for handlers written as Bash functions: `handler.sh` defines
# `handler`, which gets the event as $1 and prints its JSON result.
BASH_RUNTIME = r"""#!/bin/bash
set -eu
source "$LAMBDA_TASK_ROOT/${_HANDLER%.*}.sh"
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  EVENT="$(curl -sS -D /tmp/headers "$API/next")"
  ID="$(grep -i '^Lambda-Runtime-Aws-Request-Id:' /tmp/headers | cut -d: -f2 | tr -d '[:space:]')"
  if RESULT="$("${_HANDLER##*.}" "$EVENT")"; then
    curl -sS -X POST "$API/$ID/response" -d "$RESULT" >/dev/null
  else
    curl -sS -X POST "$API/$ID/error" -d '{"errorMessage":"the handler failed","errorType":"Bash.Failed"}' >/dev/null
  fi
done
"""
HANDLER = 'handler() {\n  echo "{\\"greeting\\": \\"$GREETING\\", \\"event\\": $1}"\n}\n'


def test_a_registered_runtime_runs_functions_and_survives_a_restart(
    tmp_path: Path, daemon: DaemonProcess, api: httpx.Client
) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    definition = {
        "name": "bash-fn",
        "bootstrap": BASH_RUNTIME,
        "extension": ".sh",
        "env": {"GREETING": "hello"},
    }
    registered = api.post("/runtimes", json=definition)
    assert registered.status_code == 201, registered.text
    assert registered.json()["available"] is True
    assert api.post("/runtimes", json=definition).status_code == 409
    listed = {item["name"]: item for item in api.get("/runtimes").json()["items"]}
    assert listed["bash-fn"]["registered"] is True

    body = {"name": "greeter", "runtime": "bash-fn", "code": HANDLER}
    created = api.post("/functions", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["env"] == {"GREETING": "hello"}
    result = api.post("/functions/greeter/invoke", json={"n": 1}).json()
    assert result["output"] == {"greeting": "hello", "event": {"n": 1}}, result

    daemon.stop()
    restarted = DaemonProcess(daemon.data_dir).start()
    try:
        with restarted.client() as again:
            result = again.post("/functions/greeter/invoke", json=[2]).json()
            assert result["output"] == {"greeting": "hello", "event": [2]}, result
    finally:
        restarted.stop()


def test_bad_definitions_are_refused(api: httpx.Client) -> None:
    cases = [
        {"name": "x", "bootstrap": "no shebang", "extension": ".x"},
        {"name": "Bad", "bootstrap": "#!/bin/sh\n", "extension": ".x"},
        {"name": "ok", "bootstrap": "#!/bin/sh\n", "extension": "x"},
        {"name": "python", "bootstrap": "#!/bin/sh\n", "extension": ".py"},
    ]
    statuses = [api.post("/runtimes", json=case).status_code for case in cases]
    assert statuses == [422, 422, 422, 409]
