"""Custom runtimes (`runtime: provided`): a bootstrap behind the Lambda Runtime API.

The shipped examples (examples/provided: the Bash one and the compiled C one) and AWS's own
runtime interface client for Python run unchanged; bootstraps that fail in each way AWS names
give a clear invocation error and leave the function working.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "provided"
BASH_BOOTSTRAP = (EXAMPLES / "bash" / "bootstrap").read_text()


def _need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    return found


def _create(api: httpx.Client, name: str, bootstrap: str, **extra: object) -> None:
    body = {"name": name, "runtime": "provided", "files": {"bootstrap": bootstrap}, **extra}
    response = api.post("/functions", json=body)
    assert response.status_code == 201, response.text


def _invoke(api: httpx.Client, name: str, event: object) -> dict[str, object]:
    response = api.post(f"/functions/{name}/invoke", json=event)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_the_bash_bootstrap_answers(api: httpx.Client) -> None:
    _need("curl")
    _create(api, "bash-echo", BASH_BOOTSTRAP)
    for n in range(3):  # the same bootstrap serves one event after another
        result = _invoke(api, "bash-echo", {"n": n})
        assert result["error"] is None, result
        assert result["output"] == {"echo": {"n": n}}


def test_the_custom_alias_and_a_single_code_source(api: httpx.Client) -> None:
    _need("curl")
    response = api.post(
        "/functions", json={"name": "aliased", "runtime": "custom", "code": BASH_BOOTSTRAP}
    )
    assert response.status_code == 201, response.text
    assert response.json()["runtime"] == "provided"
    result = _invoke(api, "aliased", [1])
    assert result["output"] == {"echo": [1]}, result


def test_the_compiled_bootstrap_answers(api: httpx.Client, tmp_path: Path) -> None:
    cc = _need("cc")
    binary = tmp_path / "bootstrap"
    subprocess.run([cc, "-O2", "-o", str(binary), str(EXAMPLES / "c" / "bootstrap.c")], check=True)
    archive = zip_with_executable({"bootstrap": binary.read_bytes()})
    meta = json.dumps({"name": "c-echo", "runtime": "provided"})
    response = api.post(
        "/functions", files={"meta": (None, meta), "zip": ("c.zip", archive, "application/zip")}
    )
    assert response.status_code == 201, response.text
    for n in range(3):
        assert _invoke(api, "c-echo", {"n": n})["output"] == {"echo": {"n": n}}


def test_headers_environment_and_logs_reach_the_bootstrap(api: httpx.Client) -> None:
    _need("curl")
    bootstrap = """#!/bin/bash
set -eu
API="http://$AWS_LAMBDA_RUNTIME_API/runtime/invocation"
[ "$NOVA_RUNTIME_API" = "$AWS_LAMBDA_RUNTIME_API" ]
while true; do
  curl -sS -D /tmp/h -o /tmp/e "$API/next"
  ID=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' /tmp/h | cut -d: -f2 | tr -d '[:space:]')
  echo "log line for $ID" >&2
  ARN=$(grep -i '^Lambda-Runtime-Invoked-Function-Arn:' /tmp/h | cut -d' ' -f2 | tr -d '\\r')
  DEADLINE=$(grep -i '^Lambda-Runtime-Deadline-Ms:' /tmp/h | cut -d' ' -f2 | tr -d '\\r')
  printf '{"id":"%s","arn":"%s","deadline":%s,"handler":"%s","fn":"%s"}' "$ID" "$ARN" \\
    "$DEADLINE" "$_HANDLER" "$AWS_LAMBDA_FUNCTION_NAME" > /tmp/r
  curl -sS -X POST "$API/$ID/response" --data-binary @/tmp/r >/dev/null
done
"""
    _create(api, "headers", bootstrap, handler="my.handler")
    response = api.post(
        "/functions/headers/invoke", json={}, headers={"X-Nova-Request-Id": "req-42"}
    )
    result = response.json()
    assert result["error"] is None, result
    output = result["output"]
    assert output["id"] == "req-42"
    assert output["arn"].endswith(":function:headers")
    assert output["handler"] == "my.handler"
    assert output["fn"] == "headers"
    assert output["deadline"] > 0
    deadline = time.monotonic() + 30  # the log record is written in the background
    while time.monotonic() < deadline:
        logs = api.get("/functions/headers/logs").json()["items"]
        if logs:
            break
        time.sleep(0.1)
    assert any("log line for req-42" in item["stderr"] for item in logs), logs


def test_init_error_fails_the_invocation_with_that_error(api: httpx.Client) -> None:
    _need("curl")
    bootstrap = """#!/bin/bash
curl -sS -X POST "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error" \\
  -H 'Lambda-Runtime-Function-Error-Type: Runtime.NoConfig' \\
  -d '{"errorMessage":"CONFIG is not set","errorType":"Config.Missing"}'
sleep 60
"""
    _create(api, "init-fails", bootstrap)
    for _ in range(2):  # every invocation says why; none hangs
        error = _invoke(api, "init-fails", {})["error"]
        assert error == {"type": "Config.Missing", "message": "CONFIG is not set", "stack": []}


def test_a_bootstrap_that_never_asks_times_out_and_the_next_invocation_works(
    api: httpx.Client, tmp_path: Path
) -> None:
    _need("curl")
    # Hangs at its first start, works at the next: the timeout must not wedge the instance.
    bootstrap = (
        "#!/bin/bash\nif mkdir /tmp/nova-hang-once-$AWS_LAMBDA_FUNCTION_NAME 2>/dev/null; "
        "then sleep 600; fi\n" + BASH_BOOTSTRAP.split("\n", 1)[1]
    )
    _create(api, "hangs", bootstrap, timeout_s=1.5)
    try:
        error = _invoke(api, "hangs", {})["error"]
        assert error["type"] == "Function.Timeout", error
        assert "invocation/next" in error["message"]
        assert _invoke(api, "hangs", {"again": 1})["output"] == {"echo": {"again": 1}}
    finally:
        shutil.rmtree("/tmp/nova-hang-once-hangs", ignore_errors=True)


def test_a_bootstrap_that_dies_fails_that_invocation_only(api: httpx.Client) -> None:
    _need("curl")
    bootstrap = """#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  EVENT=$(curl -sS -D /tmp/h "$API/next")
  ID=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' /tmp/h | cut -d: -f2 | tr -d '[:space:]')
  if [ "$EVENT" = '"die"' ]; then echo "dying on purpose" >&2; exit 7; fi
  curl -sS -X POST "$API/$ID/response" -d "$EVENT" >/dev/null
done
"""
    _create(api, "dies", bootstrap)
    error = _invoke(api, "dies", "die")["error"]
    assert error["type"] == "Runtime.ExitError"
    assert "exited with code 7" in error["message"]
    assert "dying on purpose" in error["message"]
    assert _invoke(api, "dies", "fine")["output"] == "fine"


def test_function_errors_and_runtime_api_status_codes(api: httpx.Client) -> None:
    _need("curl")
    bootstrap = r"""#!/bin/bash
B="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  curl -sS -D /tmp/h -o /dev/null "$B/invocation/next"
  ID=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' /tmp/h | cut -d: -f2 | tr -d '[:space:]')
  s1=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$B/invocation/not-$ID/response" -d 1)
  s2=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$B/init/error" -d '{}')
  s3=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$B/invocation/$ID/error" \
    -d "{\"errorMessage\":\"$s1 $s2\",\"errorType\":\"Handler.Failed\",\"stackTrace\":[\"at x\"]}")
  s4=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$B/invocation/$ID/response" -d 1)
  echo "$s3 $s4" > /tmp/codes
done
"""
    _create(api, "statuses", bootstrap)
    error = _invoke(api, "statuses", {})["error"]
    assert error == {"type": "Handler.Failed", "message": "400 403", "stack": ["at x"]}


def test_awslambdaric_runs_unchanged_as_the_bootstrap(api: httpx.Client) -> None:
    pytest.importorskip("awslambdaric", reason="pip install awslambdaric (the dev extras)")
    files = _vendored("awslambdaric", "simplejson", "snapshot-restore-py")
    files["bootstrap"] = (
        f'#!/bin/sh\nexec {sys.base_prefix}/bin/python3 -m awslambdaric "$_HANDLER"\n'
    )
    files["app.py"] = (
        "def handler(event, context):\n"
        "    return {'got': event, 'rid': context.aws_request_id,\n"
        "            'left': context.get_remaining_time_in_millis() > 0}\n"
        "def fails(event, context):\n"
        "    raise ValueError('bad input')\n"
    )
    archive = zip_with_executable(files)
    meta = json.dumps({"name": "ric", "runtime": "provided", "handler": "app.handler"})
    response = api.post(
        "/functions", files={"meta": (None, meta), "zip": ("r.zip", archive, "application/zip")}
    )
    assert response.status_code == 201, response.text
    result = _invoke(api, "ric", {"a": 1})
    assert result["error"] is None, result
    assert result["output"]["got"] == {"a": 1}
    assert result["output"]["left"] is True
    api.patch("/functions/ric", json={"handler": "app.fails"}).raise_for_status()
    error = _invoke(api, "ric", {})["error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "bad input"


def _vendored(*distributions: str) -> dict[str, str | bytes]:
    """The installed files of ``distributions``, as a Lambda package vendors them."""
    import importlib.metadata

    files: dict[str, str | bytes] = {}
    for name in distributions:
        distribution = importlib.metadata.distribution(name)
        for entry in distribution.files or ():
            path = str(entry)
            if path.startswith("..") or "__pycache__" in path or ".dist-info" in path:
                continue
            files[path] = Path(str(distribution.locate_file(entry))).read_bytes()
    return files


def zip_with_executable(files: dict[str, str | bytes]) -> bytes:
    """A zip whose `bootstrap` entry carries mode 0755, as `zip` on Linux writes it."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100755 if name == "bootstrap" else 0o100644) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def test_a_code_update_reloads_the_bootstrap_and_delete_stops_it(api: httpx.Client) -> None:
    _need("curl")
    _create(api, "reloaded", BASH_BOOTSTRAP)
    assert _invoke(api, "reloaded", 1)["output"] == {"echo": 1}
    changed = BASH_BOOTSTRAP.replace('{\\"echo\\":$EVENT}', '{\\"v2\\":$EVENT}')
    assert changed != BASH_BOOTSTRAP
    api.patch("/functions/reloaded", json={"files": {"bootstrap": changed}}).raise_for_status()
    result = _invoke(api, "reloaded", 2)
    assert result["output"] == {"v2": 2}, result
    assert result["cold_start"] is False  # hot-reloaded into the running instance
    assert api.delete("/functions/reloaded").status_code == 200
    assert api.post("/functions/reloaded/invoke", json={}).status_code == 404
