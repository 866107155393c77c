"""Settings precedence: CLI overrides > NOVA_* env > config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from nova.config import ConfigFileError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        "NOVA_CONFIG",
        "NOVA_DATABASE_URL",
        "NOVA_PORT",
        "NOVA_POOL__IDLE_TTL_S",
        "NOVA_BACKEND",
    ):
        monkeypatch.delenv(variable, raising=False)


def test_defaults_match_the_seed() -> None:
    settings = load_settings()
    assert settings.daemon.port == 9000
    assert settings.pool.idle_ttl_s == 60
    assert settings.pool.health_check_interval_s == 30
    assert settings.executor.log_batch_size == 100
    assert settings.executor.log_flush_interval_ms == 500
    assert settings.executor.max_message_bytes == 8 * 1024 * 1024
    assert settings.daemon.max_payload_bytes == 6 * 1024 * 1024
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_file_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "nova.yaml"
    config.write_text(
        "daemon:\n  port: 7000\n  host: 127.0.0.1\npool:\n  idle_ttl_s: 5\nlogging:\n  level: DEBUG\n"
    )
    from_file = load_settings(config)
    assert (from_file.daemon.port, from_file.daemon.host, from_file.pool.idle_ttl_s) == (
        7000,
        "127.0.0.1",
        5,
    )
    assert from_file.logging.level == "debug"

    monkeypatch.setenv("NOVA_PORT", "7100")
    monkeypatch.setenv("NOVA_POOL__IDLE_TTL_S", "9")
    from_env = load_settings(config)
    assert (from_env.daemon.port, from_env.pool.idle_ttl_s, from_env.daemon.host) == (
        7100,
        9,
        "127.0.0.1",
    )

    from_flags = load_settings(config, {"daemon": {"port": 7200}})
    assert (from_flags.daemon.port, from_flags.pool.idle_ttl_s, from_flags.daemon.host) == (
        7200,
        9,
        "127.0.0.1",
    )


def test_json_config_and_database_shortcut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "nova.json"
    config.write_text('{"store": {"database_url": "sqlite+aiosqlite:///from-file.db"}}')
    assert load_settings(config).database_url == "sqlite+aiosqlite:///from-file.db"
    monkeypatch.setenv("NOVA_DATABASE_URL", "postgresql+asyncpg://db/nova")
    assert load_settings(config).database_url == "postgresql+asyncpg://db/nova"


def test_loading_settings_leaves_the_environment_alone(tmp_path: Path) -> None:
    import os

    config = tmp_path / "nova.yaml"
    config.write_text("daemon: {port: 7000}\n")
    load_settings(config)
    assert "NOVA_CONFIG" not in os.environ
    assert load_settings().daemon.port == 9000


def test_bad_files_and_values_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("daemon: [unclosed\n")
    with pytest.raises(ConfigFileError, match="not valid"):
        load_settings(broken)
    with pytest.raises(ValidationError, match="port"):
        load_settings(overrides={"daemon": {"port": 70000}})


def test_image_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().sandbox.image == "host"
    monkeypatch.setenv("NOVA_IMAGE", "debian")
    monkeypatch.setenv("NOVA_SANDBOX__RUNTIME_IMAGES", '{"node": "host"}')
    settings = load_settings()
    assert settings.sandbox.image == "debian"
    assert settings.sandbox.runtime_images == {"node": "host"}
    monkeypatch.setenv("NOVA_IMAGE", "alpine")
    with pytest.raises(ValidationError, match="image"):
        load_settings()


def test_code_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings().code
    assert defaults.max_files == 20_000  # a node_modules tree fits
    assert defaults.allowed_paths == []  # code_path is off
    monkeypatch.setenv("NOVA_CODE__ALLOWED_PATHS", '["/srv/functions"]')
    monkeypatch.setenv("NOVA_CODE__MAX_FILES", "50000")
    code = load_settings().code
    assert code.allowed_paths == [Path("/srv/functions")]
    assert code.max_files == 50_000
    with pytest.raises(ValidationError, match="must be absolute"):
        load_settings(overrides={"code": {"allowed_paths": ["relative/dir"]}})


def test_secret_and_rate_limit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVA_MASTER_KEY", "c2VjcmV0LWtleS1tYXRlcmlhbA==")
    monkeypatch.setenv("NOVA_REDIS_URL", "redis://:pw@127.0.0.1:6379/0")
    settings = load_settings()
    master_key = settings.secrets.master_key
    assert master_key is not None
    assert master_key.get_secret_value() == "c2VjcmV0LWtleS1tYXRlcmlhbA=="
    assert "c2VjcmV0" not in repr(settings)  # neither the key nor the Redis password shows
    assert "pw@" not in repr(settings)
    assert settings.rate_limits.redis_url.get_secret_value().endswith("6379/0")
    with pytest.raises(ValidationError, match="unknown tier"):
        load_settings(None, {"rate_limits": {"keys": {"ip:10.0.0.1": "gold"}}})


def test_queue_trigger_brokers_default_to_the_local_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for source in ("NATS", "RABBITMQ", "REDIS"):
        monkeypatch.delenv(f"NOVA_TRIGGERS__{source}_URL", raising=False)
    triggers = load_settings().triggers
    assert triggers.nats_url.get_secret_value() == "nats://127.0.0.1:4222"
    assert triggers.rabbitmq_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert triggers.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert "guest:guest" not in repr(triggers)  # a URL's password never reaches a log line
    config = tmp_path / "nova.yaml"
    config.write_text("triggers: {nats_url: 'nats://file:4222', ack_wait_s: 60}\n")
    monkeypatch.setenv("NOVA_TRIGGERS__REDIS_URL", "redis://env:6379/1")
    triggers = load_settings(config).triggers
    assert triggers.nats_url.get_secret_value() == "nats://file:4222"
    assert triggers.redis_url.get_secret_value() == "redis://env:6379/1"
    assert triggers.ack_wait_s == 60


def test_unknown_keys_in_the_config_file_are_errors(tmp_path: Path) -> None:
    misspelt_key = tmp_path / "key.yaml"
    misspelt_key.write_text("pool:\n  idle_ttl: 5\n")  # idle_ttl_s
    with pytest.raises(ValidationError, match="idle_ttl"):
        load_settings(misspelt_key)
    misspelt_section = tmp_path / "section.yaml"
    misspelt_section.write_text("pools:\n  idle_ttl_s: 5\n")
    with pytest.raises(ConfigFileError, match=r"unknown section.*pools"):
        load_settings(misspelt_section)


def test_an_unknown_nested_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVA_POOL__IDLE_TTL", "5")
    with pytest.raises(ValidationError, match="idle_ttl"):
        load_settings()


def test_the_database_url_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+asyncpg://nova:hunter2@db:5432/nova"
    monkeypatch.setenv("NOVA_DATABASE_URL", url)
    settings = load_settings()
    assert settings.database_url == url
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
