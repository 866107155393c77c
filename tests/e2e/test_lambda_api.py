"""The Lambda Invoke API, driven by boto3 itself (endpoint_url pointed at a real daemon)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.daemon_process import DaemonProcess

boto3 = pytest.importorskip("boto3", reason="pip install boto3 (the dev extras)")
from botocore.config import Config  # noqa: E402 (after the skip: botocore comes with boto3)

HANDLER = (
    "import os\n"
    "def handler(event, context):\n"
    "    if event.get('fail'):\n"
    "        raise ValueError('asked to fail')\n"
    "    print('hello from the log')\n"
    "    return {'got': event, 'version': context.function_version,\n"
    "            'log_group': context.log_group_name,\n"
    "            'client': context.client_context and context.client_context.custom}\n"
)


def _client(daemon: DaemonProcess, access_key_id: str, secret: str) -> Any:
    """boto3's Lambda client on the daemon, signing with a Nova key's id and secret."""
    return boto3.client(
        "lambda",
        endpoint_url=daemon.url,
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture
def lam(daemon: DaemonProcess, api: httpx.Client) -> Iterator[Any]:
    api.post(
        "/functions", json={"name": "echo", "runtime": "python", "code": HANDLER}
    ).raise_for_status()
    key = api.post("/keys", json={"name": "sdk", "role": "developer"}).json()
    client = _client(daemon, key["access_key_id"], key["secret_access_key"])
    yield client
    client.close()


def _payload(response: dict[str, Any]) -> Any:
    return json.loads(response["Payload"].read())


def test_request_response(lam: Any) -> None:
    response = lam.invoke(FunctionName="echo", Payload=json.dumps({"a": 1}))
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    body = _payload(response)
    assert body["got"] == {"a": 1}
    assert body["log_group"] == "/aws/lambda/echo"


def test_tail_log_and_client_context(lam: Any) -> None:
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    response = lam.invoke(FunctionName="echo", Payload=b"{}", LogType="Tail", ClientContext=context)
    log = base64.b64decode(response["LogResult"]).decode()
    assert "hello from the log" in log
    assert log.startswith("START RequestId:")
    assert "REPORT RequestId:" in log
    assert _payload(response)["client"] == {"k": "v"}


def test_function_error_is_200_with_unhandled(lam: Any) -> None:
    response = lam.invoke(FunctionName="echo", Payload=json.dumps({"fail": True}))
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    body = _payload(response)
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "asked to fail"
    assert isinstance(body["stackTrace"], list)


def test_unknown_function_raises_the_sdk_exception(lam: Any) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
        lam.invoke(FunctionName="nope", Payload=b"{}")
    assert "nope" in caught.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="echo", Qualifier="42", Payload=b"{}")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="nope")


def test_dry_run_and_event(lam: Any, api: httpx.Client) -> None:
    dry = lam.invoke(FunctionName="echo", InvocationType="DryRun", Payload=b"{}")
    assert dry["StatusCode"] == 204
    event = lam.invoke(FunctionName="echo", InvocationType="Event", Payload=b'{"async": 1}')
    assert event["StatusCode"] == 202
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="nope", InvocationType="Event", Payload=b"{}")
    deadline = time.monotonic() + 30  # it ran: its log record appears
    while time.monotonic() < deadline:
        items = api.get("/functions/echo/logs").json()["items"]
        if any(item["input_size"] == len(b'{"async": 1}') for item in items):
            return
        time.sleep(0.1)
    pytest.fail("the Event invocation never ran")


def test_qualifier_runs_the_published_version(lam: Any, api: httpx.Client) -> None:
    api.post("/functions/echo/versions", json={}).raise_for_status()
    api.patch(
        "/functions/echo", json={"code": HANDLER.replace("'got'", "'changed'")}
    ).raise_for_status()
    old = lam.invoke(FunctionName="echo", Qualifier="1", Payload=b'{"q": 1}')
    assert old["ExecutedVersion"] == "1"
    assert _payload(old)["got"] == {"q": 1}
    arn = "arn:aws:lambda:us-east-1:000000000000:function:echo:1"
    assert lam.invoke(FunctionName=arn, Payload=b"{}")["ExecutedVersion"] == "1"
    assert "changed" in _payload(lam.invoke(FunctionName="echo", Payload=b"{}"))


def test_get_and_list_functions(lam: Any) -> None:
    config = lam.get_function(FunctionName="echo")["Configuration"]
    assert config["FunctionName"] == "echo"
    assert config["Handler"] == "handler.handler"
    assert config["FunctionArn"].endswith(":function:echo")
    names = [item["FunctionName"] for item in lam.list_functions()["Functions"]]
    assert names == ["echo"]


def test_aws_error_shapes(daemon: DaemonProcess, lam: Any) -> None:
    too_big = httpx.post(
        f"{daemon.url}/2015-03-31/functions/echo/invocations",
        content=b"[" + b"1," * 4_000_000 + b"1]",
        headers=daemon.auth_headers,
    )
    assert too_big.status_code == 413
    assert too_big.headers["x-amzn-ErrorType"] == "RequestTooLargeException"
    assert too_big.json()["__type"] == "RequestTooLargeException"
    bad = httpx.post(
        f"{daemon.url}/2015-03-31/functions/echo/invocations",
        content=b"{nope",
        headers=daemon.auth_headers,
    )
    assert bad.status_code == 400
    assert bad.json()["Type"] == "User"
    assert bad.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    kind = httpx.post(
        f"{daemon.url}/2015-03-31/functions/echo/invocations",
        headers={"X-Amz-Invocation-Type": "Later", **daemon.auth_headers},
    )
    assert kind.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"


def test_sigv4_signatures_are_checked(daemon: DaemonProcess, api: httpx.Client, lam: Any) -> None:
    key = api.post("/keys", json={"name": "other", "role": "invoker"}).json()
    invoker = _client(daemon, key["access_key_id"], key["secret_access_key"])
    answer = invoker.invoke(FunctionName="echo", Payload=b'{"n": 2}', Qualifier="$LATEST")
    assert answer["StatusCode"] == 200
    arn = "arn:aws:lambda:us-east-1:000000000000:function:echo:$LATEST"  # %3A in the path
    assert invoker.invoke(FunctionName=arn, Payload=b"{}")["StatusCode"] == 200
    wrong = _client(daemon, key["access_key_id"], key["secret_access_key"] + "x")
    with pytest.raises(wrong.exceptions.ClientError) as refused:
        wrong.invoke(FunctionName="echo", Payload=b"{}")
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = _client(daemon, "NKUNKNOWN", key["secret_access_key"])
    with pytest.raises(unknown.exceptions.ClientError) as refused:
        unknown.invoke(FunctionName="echo", Payload=b"{}")
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(invoker.exceptions.ClientError) as refused:
        invoker.list_functions()  # an invoker may invoke, not list
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    api.post("/keys/other/disable").raise_for_status()
    with pytest.raises(invoker.exceptions.ClientError) as refused:
        invoker.invoke(FunctionName="echo", Payload=b"{}")
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    for client in (invoker, wrong, unknown):
        client.close()
