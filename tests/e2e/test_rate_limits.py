"""Rate limits on real daemons: 429 at the configured rate, recovery, and one budget shared by
two daemons on one Redis."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import redis
from redis.exceptions import RedisError

from tests.e2e.daemon_process import DaemonProcess
from tests.store.backends import _unreachable
from tests.unit.ratelimit.test_buckets import redis_url

# One token every 10 s: three quick requests pass and a fourth is refused, however slow the host.
LIMITS = {"enabled": "true", "tiers": json.dumps({"default": {"rps": 0.1, "burst": 3}})}


def _env(**extra: str) -> dict[str, str]:
    return {f"NOVA_RATE_LIMITS__{key.upper()}": value for key, value in {**LIMITS, **extra}.items()}


def test_requests_over_the_budget_get_429_then_recover(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "data", env=_env()).start()
    try:
        created = daemon.cli("--json", "key", "create", "reader", "--role", "viewer")
        assert created.returncode == 0, created.stderr
        reader_key = json.loads(created.stdout)["key"]
        bearer = {"Authorization": f"Bearer {reader_key}"}
        with daemon.client(headers=bearer) as api, daemon.client() as admin:
            answers = [api.get("/functions") for _ in range(3)]
            assert [answer.status_code for answer in answers] == [200, 200, 200]
            assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
            refused = api.get("/functions")
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "RateLimit.Exceeded"
            assert 1 <= int(refused.headers["retry-after"]) <= 10
            assert refused.headers["x-ratelimit-limit"] == "3"
            assert api.get("/health/ready").status_code == 200  # probes pass regardless
            # Another key has a budget of its own (the admin key spent one token above).
            assert admin.get("/functions").status_code == 200
            deadline = time.monotonic() + 60
            while api.get("/functions").status_code == 429 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert time.monotonic() < deadline, "the budget never refilled"
    finally:
        daemon.stop()


def test_two_daemons_on_one_redis_share_one_budget(tmp_path: Path) -> None:
    try:
        redis.Redis.from_url(redis_url(), socket_connect_timeout=2).ping()
    except (OSError, RedisError) as exc:
        _unreachable(f"Redis at {redis_url()} is unreachable ({exc})")
    env = _env(redis_url=redis_url(), redis_prefix=f"nova-e2e:{secrets.token_hex(6)}:")
    first = DaemonProcess(tmp_path / "a", env=env).start()
    second = DaemonProcess(tmp_path / "b", env=env).start()
    try:
        with first.client() as a, second.client() as b:
            statuses = [client.get("/functions").status_code for client in (a, b, a)]
            assert statuses == [200, 200, 200]
            assert b.get("/functions").status_code == 429
            assert a.get("/functions").status_code == 429
    finally:
        first.stop()
        second.stop()
