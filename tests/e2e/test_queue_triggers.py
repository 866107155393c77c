"""Queue triggers end to end on the real brokers (NATS JetStream, RabbitMQ, Redis Streams):
each message runs the function once and is acknowledged; a body that is not JSON goes to the
dead letters at once, with the reason, and is acknowledged; a failing message is retried by the function's policy, reaches the dead letters with
every attempt's error, is acknowledged, and replays after a fix; a daemon killed mid-message
has the message delivered again; a trigger added or deleted through one daemon starts and
stops consumers on another, which share the messages (each runs once); an S3 event record
arrives unchanged; bad trigger input is refused with 4xx."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.brokers import SOURCES, Channel, channel, daemon_env
from tests.e2e.daemon_process import DaemonProcess

# Appends every event it gets to $SINK; fails on {"fail": true}; on {"hold": name} it marks
# the run in $SINK.<name> and, on its first run only, waits for a file that never comes.
SINK = """
import json, os, time
def handler(event, context):
    if isinstance(event, dict) and event.get('fail'):
        raise ValueError('asked to fail')
    if isinstance(event, dict) and event.get('hold'):
        marks = os.environ['SINK'] + '.' + event['hold']
        with open(marks, 'a') as out:
            out.write('run\\n')
        if open(marks).read().count('run') == 1:
            time.sleep(600)
    with open(os.environ['SINK'], 'a') as out:
        out.write(json.dumps(event) + '\\n')
    return 'ok'
"""
FIXED = """
def handler(event, context):
    return 'fixed'
"""
FAST_RETRY = {"handler_error": {"attempts": 2, "backoff_s": 0.05, "max_backoff_s": 0.1}}


def _wait(check: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _create_sink(api: httpx.Client, sink: Path, name: str = "sink") -> None:
    body = {
        "name": name,
        "runtime": "python",
        "code": SINK,
        "env": {"SINK": str(sink)},
        "async_retry": FAST_RETRY,
    }
    api.post("/functions", json=body).raise_for_status()


def _add_trigger(api: httpx.Client, ch: Channel, function: str = "sink", **extra: Any) -> None:
    body = {
        "name": ch.trigger,
        "function": function,
        "source": ch.source,
        ch.target_field: ch.target,
        **extra,
    }
    response = api.post("/triggers", json=body)
    assert response.status_code == 201, response.text


def _consuming(api: httpx.Client, ch: Channel, sink: Path, **extra: Any) -> None:
    """The sink function, a trigger on ``ch`` for it, and its consumer connected."""
    _create_sink(api, sink)
    _add_trigger(api, ch, **extra)
    _wait(lambda: _connected(api, ch.trigger), "the consumer to connect")


def _consumer(api: httpx.Client, trigger: str) -> dict[str, Any]:
    consumer: dict[str, Any] = api.get(f"/triggers/{trigger}").json()["consumer"] or {}
    return consumer


def _connected(api: httpx.Client, trigger: str) -> bool:
    return _consumer(api, trigger).get("state") == "connected"


@pytest.fixture
def trigger_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path / "data", env=daemon_env()).start()
    yield process
    process.stop()


@pytest.mark.parametrize("source", SOURCES)
def test_messages_run_once_are_acked_and_failures_dead_letter(
    source: str, trigger_daemon: DaemonProcess, tmp_path: Path
) -> None:
    sink = tmp_path / "sink.jsonl"
    with channel(source, f"t-{source}") as ch, trigger_daemon.client() as api:
        _consuming(api, ch, sink, batch_size=5, concurrency=2)
        ch.publish(b'{"n": 1}')
        _wait(lambda: _consumer(api, ch.trigger).get("acked") == 1, "the first ack")
        assert _lines(sink) == [{"n": 1}]

        ch.publish(b"not json \xff", b'{"fail": true}')
        _wait(lambda: _consumer(api, ch.trigger).get("acked") == 3, "both acks")
        dead = api.get("/dead-letters", params={"function": "sink"}).json()["items"]
        assert len(dead) == 2, dead
        by_error = {item["errors"][-1]["type"]: item for item in dead}
        not_json = by_error["Event.InvalidJson"]  # never run: dead at once, with the reason
        assert not_json["source"] == f"trigger:{ch.trigger}"
        assert "not JSON" in not_json["errors"][0]["message"]
        failed = by_error["ValueError"]
        assert failed["source"] == f"trigger:{ch.trigger}"
        assert failed["payload"] == {"fail": True}
        assert [e["type"] for e in failed["errors"]] == ["ValueError", "ValueError"]
        consumer = _consumer(api, ch.trigger)
        assert (consumer["received"], consumer["failed"], consumer["dead_lettered"]) == (3, 2, 2)
        assert ch.pending() == 0  # every message acknowledged on the broker
        assert len(_lines(sink)) == 1  # the JSON one ran once; the others never succeeded
        metrics = api.get("/metrics").text
        labels = f'source="{source}",trigger="{ch.trigger}"'
        for result, count in [("received", 3), ("acked", 3), ("failed", 2), ("dead_lettered", 2)]:
            assert f'nova_trigger_messages_total{{result="{result}",{labels}}} {count}.0' in metrics
        assert 'nova_async_queue_events{status="dead"} 2.0' in metrics

        # After a fix, the dead letter replays through the asynchronous queue.
        api.patch("/functions/sink", json={"code": FIXED}).raise_for_status()
        replayed = trigger_daemon.cli("dlq", "replay", failed["request_id"])
        assert replayed.stdout.strip() == "replayed 1 dead letter(s)", replayed.stderr
        event = _wait(
            lambda: (
                body
                if (body := api.get(f"/invocations/{failed['request_id']}").json())["status"]
                == "succeeded"
                else None
            ),
            "the replay",
        )
        assert event["result"]["output"] == "fixed"


@pytest.mark.parametrize("source", SOURCES)
def test_daemon_killed_mid_message_gets_it_again_and_a_backlog_runs(
    source: str, tmp_path: Path
) -> None:
    sink = tmp_path / "sink.jsonl"
    # A short ack wait: NATS redelivers, and Redis lets another consumer claim, after it.
    env = {**daemon_env(ack_wait_s=2), "NOVA_DATABASE_URL": f"sqlite:///{tmp_path}/nova.db"}
    first = DaemonProcess(tmp_path / "data", env=env).start()
    with channel(source, f"crash-{source}") as ch:
        try:
            with first.client() as api:
                _consuming(api, ch, sink)
                ch.publish(b'{"hold": "h1"}')
                marks = Path(f"{sink}.h1")
                _wait(lambda: marks.exists(), "the first run to start")
        finally:
            first.stop(signal.SIGKILL)
        # Published while no daemon runs: waiting in the broker for the next one.
        ch.publish(*(json.dumps({"down": n}).encode() for n in range(10)))
        second = DaemonProcess(tmp_path / "data", env=env).start()
        try:
            with second.client() as api:
                _wait(lambda: {"hold": "h1"} in _lines(sink), "the message again", 90)
                _wait(lambda: _consumer(api, ch.trigger).get("acked") == 11, "every ack")
                assert marks.read_text().count("run") == 2
                down = sorted(line["down"] for line in _lines(sink) if "down" in line)
                assert down == list(range(10))  # each once
                assert ch.pending() == 0
        finally:
            second.stop()


def test_redis_consumer_reconnects_and_health_shows_it(
    trigger_daemon: DaemonProcess, tmp_path: Path
) -> None:
    import asyncio

    import redis.asyncio as redis

    from tests.brokers import broker_url

    async def kill_consumer_connections(name: str) -> int:
        client = redis.from_url(broker_url("redis"))
        try:
            killed = 0
            for entry in await client.client_list():
                if str(entry.get("name", "")).startswith(name):
                    killed += int(await client.execute_command("CLIENT", "KILL", "ID", entry["id"]))
            return killed
        finally:
            await client.aclose()

    sink = tmp_path / "sink.jsonl"
    with channel("redis", "reconnect") as ch, trigger_daemon.client() as api:
        _consuming(api, ch, sink)
        assert asyncio.run(kill_consumer_connections("nova-reconnect")) >= 1

        def reconnected() -> dict[str, Any] | None:
            health = api.get("/health").json()
            [entry] = [t for t in health["triggers"] if t["name"] == "reconnect"]
            return entry if entry["reconnects"] >= 1 and entry["state"] == "connected" else None

        entry = _wait(reconnected, "/health to show the reconnect")
        [stats] = api.get("/stats").json()["triggers"]
        assert (stats["name"], stats["reconnects"]) == ("reconnect", 1)
        assert entry["source"] == "redis"
        assert entry["last_error"] is None
        ch.publish(b'{"after": "reconnect"}')
        _wait(lambda: _lines(sink) == [{"after": "reconnect"}], "a message after the reconnect")
        metrics = api.get("/metrics").text
        assert 'nova_trigger_reconnects_total{source="redis",trigger="reconnect"} 1.0' in metrics
        assert (
            'nova_trigger_messages_total{result="acked",source="redis",trigger="reconnect"}'
            in metrics
        )


def test_two_daemons_share_messages_and_follow_trigger_changes(
    tmp_path: Path, store_url: str
) -> None:
    sink = tmp_path / "sink.jsonl"
    env = {**daemon_env(), "NOVA_DATABASE_URL": store_url}
    env["NOVA_STORE__CHANGE_POLL_S"] = "0.2"
    a = DaemonProcess(tmp_path / "a", env=env).start()
    b = DaemonProcess(tmp_path / "b", env=env).start()
    try:
        with channel("redis", "shared") as ch, a.client() as api_a, b.client() as api_b:
            _create_sink(api_a, sink)
            _add_trigger(api_a, ch, concurrency=4)  # through A only
            _wait(lambda: _connected(api_b, "shared"), "B to start a consumer")
            _wait(lambda: _connected(api_a, "shared"), "A's consumer")
            ch.publish(*(json.dumps({"n": n}).encode() for n in range(40)))
            _wait(lambda: len(_lines(sink)) >= 40, "every message")
            time.sleep(0.5)  # a duplicate, were there one, would land now
            assert sorted(line["n"] for line in _lines(sink)) == list(range(40))
            acked = [_consumer(api, "shared")["acked"] for api in (api_a, api_b)]
            assert sum(acked) == 40
            assert ch.pending() == 0

            api_a.post("/triggers/shared/pause").raise_for_status()
            _wait(lambda: _consumer(api_b, "shared") == {}, "B to stop on pause")
            assert [t["name"] for t in api_b.get("/health").json()["triggers"]] == []
            api_a.post("/triggers/shared/resume").raise_for_status()
            _wait(lambda: _connected(api_b, "shared"), "B to resume")
            api_a.delete("/triggers/shared").raise_for_status()
            _wait(lambda: api_b.get("/health").json()["triggers"] == [], "B to stop on delete")
    finally:
        a.stop()
        b.stop()


# What MinIO publishes for an upload (its S3-compatible notification, to NATS, AMQP, Redis or
# a webhook target): the function must get exactly this.
S3_EVENT = {
    "EventName": "s3:ObjectCreated:Put",
    "Key": "photos/cat.png",
    "Records": [
        {
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "awsRegion": "",
            "eventTime": "2026-12-06T03:00:00.000Z",
            "eventName": "s3:ObjectCreated:Put",
            "userIdentity": {"principalId": "minioadmin"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "17F1B5C3A2D4E6F8"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "Config",
                "bucket": {
                    "name": "photos",
                    "ownerIdentity": {"principalId": "minioadmin"},
                    "arn": "arn:aws:s3:::photos",
                },
                "object": {
                    "key": "cat.png",
                    "size": 1024,
                    "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                    "contentType": "image/png",
                    "userMetadata": {"content-type": "image/png"},
                    "sequencer": "17F1B5C3A2D4E6F9",
                },
            },
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"},
        }
    ],
}


@pytest.mark.parametrize("source", SOURCES)
def test_s3_event_record_arrives_unchanged(
    source: str, trigger_daemon: DaemonProcess, tmp_path: Path
) -> None:
    sink = tmp_path / "sink.jsonl"
    with channel(source, f"s3-{source}") as ch, trigger_daemon.client() as api:
        _consuming(api, ch, sink)
        ch.publish(json.dumps(S3_EVENT).encode())
        assert _wait(lambda: _lines(sink), "the S3 event") == [S3_EVENT]


def test_bad_trigger_input_is_refused(trigger_daemon: DaemonProcess, tmp_path: Path) -> None:
    with trigger_daemon.client() as api:
        _create_sink(api, tmp_path / "sink.jsonl")
        good = {"name": "ok", "function": "sink", "source": "redis", "stream": "s"}
        cases: list[tuple[dict[str, Any], int, str, str]] = [
            ({**good, "name": "Bad Name"}, 422, "Request.Invalid", "name:"),
            ({**good, "source": "kafka"}, 422, "Request.Invalid", "source:"),
            ({**good, "subject": "x"}, 422, "Request.Invalid", "subject:"),
            ({k: v for k, v in good.items() if k != "stream"}, 422, "Request.Invalid", "stream:"),
            ({**good, "stream": "has space"}, 422, "Request.Invalid", "stream:"),
            ({**good, "url": "http://x"}, 422, "Request.Invalid", "url:"),
            ({**good, "batch_size": 0}, 422, "Request.Invalid", "batch_size:"),
            ({**good, "concurrency": 100000}, 422, "Request.Invalid", "concurrency:"),
            ({**good, "function": "missing"}, 404, "Function.NotFound", "missing"),
            ({**good, "function": "sink:nope"}, 404, "Alias.NotFound", "nope"),
            ({**good, "extra": 1}, 422, "Request.Invalid", "extra"),
        ]
        for body, status, code, mention in cases:
            response = api.post("/triggers", json=body)
            assert response.status_code == status, (body, response.text)
            error = response.json()["error"]
            assert (error["code"], mention in error["message"]) == (code, True), (body, error)
        malformed = api.post(
            "/triggers", content=b"{", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400
        assert api.post("/triggers", json={**good, "enabled": False}).status_code == 201
        again = api.post("/triggers", json=good)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "Trigger.AlreadyExists")
        for method, path in [
            ("GET", "/triggers/none"),
            ("DELETE", "/triggers/none"),
            ("POST", "/triggers/none/pause"),
        ]:
            response = api.request(method, path)
            assert (response.status_code, response.json()["error"]["code"]) == (
                404,
                "Trigger.NotFound",
            )
        assert api.get("/triggers/Bad!").status_code == 422

    cli = trigger_daemon.cli("trigger", "add", "x", "-f", "sink", "-s", "kafka", "--from", "q")
    assert cli.returncode != 0
    assert "use nats, rabbitmq or redis" in cli.stderr


def test_cli_adds_lists_pauses_and_deletes(trigger_daemon: DaemonProcess, tmp_path: Path) -> None:
    sink = tmp_path / "sink.jsonl"
    with channel("rabbitmq", "cli-t") as ch, trigger_daemon.client() as api:
        _create_sink(api, sink)
        added = trigger_daemon.cli(
            "trigger", "add", "cli-t", "-f", "sink", "-s", "rabbitmq", "--from", ch.target
        )
        assert added.returncode == 0, added.stderr
        assert "added trigger cli-t" in added.stdout
        _wait(lambda: _connected(api, "cli-t"), "the consumer to connect")
        ch.publish(b'{"via": "cli"}')
        _wait(lambda: _lines(sink) == [{"via": "cli"}], "the message")
        listed = trigger_daemon.cli("trigger", "list")
        assert "cli-t" in listed.stdout
        assert "connected" in listed.stdout, listed.stdout
        assert (
            trigger_daemon.cli("trigger", "pause", "cli-t").stdout.strip() == "paused trigger cli-t"
        )
        assert "paused" in trigger_daemon.cli("trigger", "list").stdout
        assert trigger_daemon.cli("trigger", "resume", "cli-t").returncode == 0
        shown = json.loads(trigger_daemon.cli("--json", "trigger", "show", "cli-t").stdout)
        assert shown["queue"] == ch.target
        assert trigger_daemon.cli("trigger", "delete", "cli-t").returncode == 0
        missing = trigger_daemon.cli("trigger", "delete", "cli-t")
        assert missing.returncode != 0
        assert "nova trigger list" in missing.stderr
