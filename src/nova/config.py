"""The one Settings model.

Sources, highest priority first: CLI flags (passed as init kwargs by ``nova daemon``) >
``NOVA_*`` environment variables (nested with ``__``, e.g. ``NOVA_POOL__IDLE_TTL_S``, plus the
shortcuts in ``ENV_SHORTCUTS``) > a YAML/JSON file (``--config`` or ``NOVA_CONFIG``) > defaults.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from nova.core.models import MAX_TIMEOUT_S

# Short names people expect (seed 003 documents NOVA_HTTP_ADDR-style flat variables).
ENV_SHORTCUTS: dict[str, tuple[str, str]] = {
    "NOVA_DATABASE_URL": ("store", "database_url"),
    "NOVA_DATA_DIR": ("daemon", "data_dir"),
    "NOVA_HOST": ("daemon", "host"),
    "NOVA_PORT": ("daemon", "port"),
    "NOVA_LOG_LEVEL": ("logging", "level"),
    "NOVA_LOG_FORMAT": ("logging", "format"),
    "NOVA_IDLE_TTL_S": ("pool", "idle_ttl_s"),
    "NOVA_BACKEND": ("sandbox", "backend"),
    "NOVA_IMAGE": ("sandbox", "image"),
    "NOVA_MASTER_KEY": ("secrets", "master_key"),
    "NOVA_REDIS_URL": ("rate_limits", "redis_url"),
    "NOVA_AUTH_PEPPER": ("auth", "pepper"),
}


class Section(BaseModel):
    """A section of the settings: a key it does not know is an error, not ignored, so a
    misspelt setting (in the config file or a NOVA_SECTION__KEY variable) never silently
    leaves its default in place."""

    model_config = ConfigDict(extra="forbid")


class DaemonSettings(Section):
    host: str = "0.0.0.0"
    port: int = Field(9000, ge=0, le=65535)
    data_dir: Path = Path(".nova-data")
    shutdown_timeout_s: float = Field(30.0, gt=0)
    max_payload_bytes: int = Field(6 * 1024 * 1024, gt=0)
    # Allows auth.enabled=false on an address beyond loopback (anyone reaching it runs code).
    insecure: bool = False


class PoolSettings(Section):
    idle_ttl_s: float = Field(60.0, gt=0)
    cleanup_interval_s: float = Field(10.0, gt=0)
    health_check_interval_s: float = Field(30.0, gt=0)
    health_check_timeout_s: float = Field(2.0, gt=0)
    start_timeout_s: float = Field(10.0, gt=0)
    queue_timeout_s: float = Field(10.0, ge=0)  # how long a request waits at max_replicas
    max_queue_per_function: int = Field(1000, ge=0)


class ExecutorSettings(Section):
    log_batch_size: int = Field(100, gt=0)
    # Invocation-log records held in memory before they spill to the spool.
    log_buffer_size: int = Field(10_000, gt=0)
    log_flush_interval_ms: int = Field(500, gt=0)
    log_timeout_s: float = Field(5.0, gt=0)  # a store write taking longer is spooled instead
    # Where records go while the store is away or behind; None means <data_dir>/log-spool.
    log_spool_dir: Path | None = None
    log_spool_max_bytes: int = Field(1024 * 1024 * 1024, gt=0)
    log_retry_interval_s: float = Field(1.0, gt=0)  # how often a failing store is tried again
    # Only when the buffer is full and the spool refuses records (disk full, over its limit):
    # how long an invocation waits for room before records beyond the buffer are dropped.
    log_backpressure_timeout_s: float = Field(5.0, ge=0)
    max_message_bytes: int = Field(8 * 1024 * 1024, gt=0)
    timeout_grace_s: float = Field(0.5, ge=0)  # slack past timeout_s before the instance is killed
    # Invocation logs older than this are deleted (0: keep them forever), checked every hour.
    log_retention_days: float = Field(7.0, ge=0)
    # Each function keeps at most its newest this many records (0: no limit by count).
    log_retention_per_function: int = Field(0, ge=0)
    log_retention_interval_s: float = Field(3600.0, gt=0)


class FunctionSettings(Section):
    """Upper bounds of function fields (the lower ones are what the agent can honour)."""

    max_memory_mb: int = Field(10240, ge=64)
    # Only lower: clients (nova invoke) wait for MAX_TIMEOUT_S and no longer.
    max_timeout_s: float = Field(MAX_TIMEOUT_S, ge=0.1, le=MAX_TIMEOUT_S)
    max_replicas: int = Field(1000, ge=1)
    max_instance_concurrency: int = Field(8, ge=1, le=256)  # the agent runs at most 256


class CodeSettings(Section):
    """How much code a function may have, and where ``code_path`` may read it from."""

    # A create or update request body (JSON with code or files) or a zip upload.
    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0)
    # Files of one function (a node_modules tree easily holds thousands).
    max_files: int = Field(20_000, gt=0)
    max_unpacked_bytes: int = Field(250 * 1024 * 1024, gt=0)
    # Directories `code_path` may read below (the daemon's own files stay private). Empty:
    # `code_path` is refused.
    allowed_paths: list[Path] = []
    # Installing a package's requirements.txt / package.json at deploy time (pip, npm).
    dependency_build_timeout_s: float = Field(300.0, gt=0, le=3600)

    @field_validator("allowed_paths")
    @classmethod
    def _absolute(cls, paths: list[Path]) -> list[Path]:
        relative = [str(path) for path in paths if not path.is_absolute()]
        if relative:
            raise ValueError(f"code.allowed_paths must be absolute: {', '.join(relative)}")
        return paths


class CompileSettings(Section):
    """Compiled languages (Go, Rust, Java): the build after each create or update."""

    timeout_s: float = Field(600.0, gt=0, le=3600)  # one build, then it fails
    # How long an invocation waits for a running build before Function.Compiling (503).
    wait_s: float = Field(60.0, ge=0, le=900)
    concurrency: int = Field(1, ge=1, le=64)  # builds at once; the others are pending
    # The toolchains' own caches (Go's build cache): kept across builds and restarts, so only
    # the first build compiles the standard library. None: <data_dir>/toolchain-cache.
    cache_dir: Path | None = None


class StoreSettings(Section):
    # Empty means SQLite at <data_dir>/nova.db. Secret: it may carry a password.
    database_url: SecretStr = SecretStr("")
    # How often the change log is read for changes made through other daemons (on PostgreSQL
    # a NOTIFY wakes the reader at once; this is then only the fallback).
    change_poll_s: float = Field(0.5, gt=0, le=60)
    change_retention_s: float = Field(86400.0, gt=60)  # change-log entries older are pruned
    # How often this daemon adds its counts to the totals /stats reports: a daemon killed with
    # SIGKILL loses at most this long's counts (a clean stop flushes them all).
    counters_flush_s: float = Field(1.0, gt=0, le=300)


class CanarySettings(Section):
    # How often aliases with a canary policy are analysed.
    check_interval_s: float = Field(5.0, gt=0, le=3600)


class EventSettings(Section):
    """Asynchronous invocations (``X-Nova-Invocation-Type: Event``): the durable queue's workers."""

    concurrency: int = Field(64, ge=1, le=10_000)  # events this daemon runs at once
    # A claimed event is this daemon's for lease_s, renewed every third of it while it runs;
    # after a crash, its events run again elsewhere (or after the restart) once it expires.
    lease_s: float = Field(30.0, ge=1, le=3600)
    poll_s: float = Field(0.5, gt=0, le=60)  # how often the store is asked for due events
    retention_days: float = Field(7.0, ge=0)  # succeeded events are deleted after (0: kept)


class TriggerSettings(Section):
    """Queue triggers: where each broker is (a trigger may name its own URL) and how its
    consumers behave."""

    nats_url: SecretStr = SecretStr("nats://127.0.0.1:4222")
    rabbitmq_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # A message a daemon holds is redelivered (NATS ack wait) or claimed by another daemon
    # (Redis pending entries idle this long) after it; held messages are kept alive every
    # third of it, so only a daemon that died loses them. RabbitMQ requeues on disconnect.
    ack_wait_s: float = Field(300.0, ge=1, le=86400)
    reconnect_initial_s: float = Field(0.5, gt=0, le=60)  # backoff after a broker went away
    reconnect_max_s: float = Field(30.0, gt=0, le=3600)
    lag_interval_s: float = Field(10.0, gt=0, le=3600)  # how often the broker is asked


class HttpTriggerSettings(Section):
    """Function URLs (/fn/{name}/...) and custom routes."""

    # How often a daemon re-reads routes and function URL settings that other daemons changed
    # (its own changes apply at once).
    refresh_s: float = Field(2.0, gt=0, le=3600)


class ScheduleSettings(Section):
    """Schedules: cron and @every ticks fired through the async event queue."""

    enabled: bool = True  # false: this daemon fires no schedules (others sharing the store may)
    poll_s: float = Field(1.0, gt=0, le=60)  # how often due schedules are looked for
    # catch_up "none": a tick at most this late still runs (a slow poll is not downtime).
    grace_s: float = Field(60.0, ge=0, le=86400)
    max_catch_up: int = Field(100, ge=1, le=10_000)  # catch_up "all": at most this many ticks


class SandboxSettings(Section):
    backend: Literal["auto", "process", "container", "gvisor", "microvm"] = "auto"
    # The process backend gives no isolation; it must be asked for explicitly.
    allow_process_backend: bool = False
    # Root filesystem of container instances: "host" binds the host's /usr read-only (nothing to
    # build); "debian" runs each runtime on a debootstrap'ed image (`nova image build RUNTIME`).
    image: Literal["host", "debian"] = "host"
    # Blank container instances kept started so cold starts only pay for Init (0: off).
    standby_instances: int = Field(2, ge=0, le=32)
    # Container starts forked from a function template that imported the code once (Python):
    # built by the first cold start ("first_invoke"), on create/update ("eager"), or never.
    snapshots: Literal["eager", "first_invoke", "off"] = "first_invoke"
    snapshot_ttl_s: float = Field(600.0, gt=0)  # a template no start used for this long goes
    snapshot_memory_mb: int = Field(512, ge=1)  # all templates together; past it, LRU goes
    # Node/Ruby runtimes kept started per (runtime, image, memory size) once a function of that
    # kind cold-started, waiting to load a function (0: off; needs snapshots on).
    prestarted_runtimes: int = Field(1, ge=0, le=8)
    runtime_images: dict[str, Literal["host", "debian"]] = {}  # per-runtime exceptions
    # Guest RAM of a microvm instance beyond its memory_mb: the guest kernel and the agent.
    microvm_overhead_mb: int = Field(64, ge=32, le=1024)
    # Disk the microvm backend's VM snapshots may fill; past it, the least recently used go.
    microvm_snapshots_max_mb: int = Field(4096, ge=0)
    # Backends this daemon must not use even where the host can run them (a host with QEMU but
    # no KVM, say, where a microVM boots in seconds): functions asking for one are refused.
    disabled_backends: list[Literal["container", "gvisor", "microvm", "process"]] = []


class SecretsSettings(Section):
    # base64 of 32 bytes (or 64 hex digits); unset: the key file below, created on first start.
    master_key: SecretStr | None = None
    key_file: Path | None = None  # None: <data_dir>/master-key


class JwtSettings(Section):
    """JSON Web Tokens accepted besides API keys (off unless a secret or a JWKS file is set)."""

    algorithms: list[Literal["HS256", "RS256"]] = ["HS256", "RS256"]
    hs256_secret: SecretStr | None = None  # at least 32 characters
    jwks_file: Path | None = None  # RS256 public keys, {"keys": [...]}
    issuer: str | None = None  # required "iss" when set
    audience: str | None = None  # required "aud" when set
    leeway_s: float = Field(30.0, ge=0, le=600)  # clock skew allowed on exp, nbf, iat
    role_claim: str = "nova_role"
    scope_claim: str = "nova_scope"  # "*" or patterns (a string or a list); absent: "*"
    # "org/project/env" the token acts in, or "*"; absent: every environment (like "*").
    environment_claim: str = "nova_env"
    # Claim value -> role, besides the role names themselves (e.g. {"platform-team": "admin"}).
    role_map: dict[str, Literal["admin", "developer", "invoker", "viewer"]] = {}
    # The role of a token without the role claim; None: such tokens are refused.
    default_role: Literal["admin", "developer", "invoker", "viewer"] | None = None

    @field_validator("hs256_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("auth.jwt.hs256_secret must be at least 32 characters")
        return secret

    @property
    def enabled(self) -> bool:
        return self.hs256_secret is not None or self.jwks_file is not None


class AuthSettings(Section):
    """API keys (nova.auth). Off only on purpose: a daemon without authentication refuses to
    listen beyond loopback unless ``daemon.insecure`` (``--insecure``) says so."""

    enabled: bool = True
    # Paths served without a key; each covers itself and every path below it.
    public_paths: list[str] = ["/health"]
    # The HMAC key of stored key hashes; unset: <data_dir>/auth-pepper, created on first
    # start. Daemons sharing a store must share it (like the master key).
    pepper: SecretStr | None = None
    admin_key_file: Path | None = None  # None: <data_dir>/admin-key
    # How often when keys were last used is written to the store (in one batch).
    last_used_flush_s: float = Field(30.0, gt=0, le=3600)
    jwt: JwtSettings = JwtSettings()


class RateLimitTier(Section):
    rps: float = Field(gt=0)  # tokens added per second
    burst: int = Field(ge=1)  # bucket size: requests allowed at once after a quiet spell


class RateLimitSettings(Section):
    """Token buckets per credential (and per function, for the functions listed)."""

    enabled: bool = False
    tiers: dict[str, RateLimitTier] = {"default": RateLimitTier(rps=100, burst=200)}
    default_tier: str = "default"
    # Credential -> tier: "key:<API key name>", or with authentication off "key:<first 16 hex
    # digits of the SHA-256 of the key sent>" / "ip:<client address>" for requests without one.
    keys: dict[str, str] = {}
    # Function name -> tier: a budget the function's invocations share, whoever calls.
    functions: dict[str, str] = {}
    # Empty: buckets in this daemon's memory. redis://host:6379/0: shared by every daemon.
    redis_url: SecretStr = SecretStr("")
    redis_prefix: str = "nova:ratelimit:"  # daemons with the same prefix share their budgets

    @model_validator(mode="after")
    def _known_tiers(self) -> RateLimitSettings:
        named = {self.default_tier, *self.keys.values(), *self.functions.values()}
        unknown = sorted(named - set(self.tiers))
        if unknown:
            raise ValueError(
                f"rate_limits: unknown tier(s) {', '.join(unknown)}; define them in tiers"
            )
        return self


def _ascending(buckets: list[float]) -> list[float]:
    if not buckets or any(b <= 0 for b in buckets) or buckets != sorted(set(buckets)):
        raise ValueError("histogram buckets must be positive, ascending and distinct")
    return buckets


class MetricsSettings(Section):
    """What GET /metrics reports beyond the daemon's state (which it always reports)."""

    # Per-invocation metrics (latency, errors, throttles, cold-start phases, pool waits).
    enabled: bool = True
    latency_buckets_s: list[float] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0, 300.0, 900.0,
    ]  # fmt: skip
    cold_start_buckets_s: list[float] = [
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]  # fmt: skip
    # Error types given their own label value per function; the rest count as "other".
    max_error_types: int = Field(20, ge=1, le=1000)

    _buckets = field_validator("latency_buckets_s", "cold_start_buckets_s")(_ascending)


class TracingSettings(Section):
    """OpenTelemetry spans of invocations, exported with OTLP over HTTP (off by default)."""

    enabled: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    # The share of traces sampled when the caller sent no sampled traceparent (0 to 1); a
    # caller's sampled traceparent is always continued.
    sampling_ratio: float = Field(1.0, ge=0, le=1)
    service_name: str = "nova"


class SloTargetSettings(Section):
    success_rate: float = Field(0.999, gt=0, lt=1)
    warm_p95_ms: float = Field(100.0, gt=0)
    cold_p95_ms: float = Field(3000.0, gt=0)
    cold_start_ratio: float = Field(0.1, ge=0, le=1)


class SloSettings(Section):
    """What GET /slo measures functions against, over how long by default."""

    window_s: int = Field(3600, ge=60, le=86400)
    targets: SloTargetSettings = SloTargetSettings()
    # Function name -> its own targets (the ones given replace the defaults above).
    functions: dict[str, dict[str, float]] = {}

    @model_validator(mode="after")
    def _valid_overrides(self) -> SloSettings:
        for name, override in self.functions.items():
            try:
                SloTargetSettings(**{**self.targets.model_dump(), **override})
            except ValueError as exc:
                raise ValueError(f"slo.functions.{name}: {exc}") from None
        return self

    def targets_for(self, function: str) -> SloTargetSettings:
        override = self.functions.get(function)
        if override is None:
            return self.targets
        return SloTargetSettings(**{**self.targets.model_dump(), **override})


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NOVA_",
        env_nested_delimiter="__",
        extra="ignore",
        nested_model_default_partial_update=True,
    )

    daemon: DaemonSettings = DaemonSettings()
    pool: PoolSettings = PoolSettings()
    executor: ExecutorSettings = ExecutorSettings()
    functions: FunctionSettings = FunctionSettings()
    code: CodeSettings = CodeSettings()
    compile: CompileSettings = CompileSettings()
    store: StoreSettings = StoreSettings()
    canary: CanarySettings = CanarySettings()
    events: EventSettings = EventSettings()
    triggers: TriggerSettings = TriggerSettings()
    http_triggers: HttpTriggerSettings = HttpTriggerSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    sandbox: SandboxSettings = SandboxSettings()
    logging: LoggingSettings = LoggingSettings()
    secrets: SecretsSettings = SecretsSettings()
    auth: AuthSettings = AuthSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
    slo: SloSettings = SloSettings()

    @field_validator("logging", mode="before")
    @classmethod
    def _lower_case_level(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("level"), str):
            return {**value, "level": value["level"].lower()}
        return value

    @property
    def database_url(self) -> str:
        configured = self.store.database_url.get_secret_value()
        if configured:
            return configured
        return f"sqlite+aiosqlite:///{(self.daemon.data_dir / 'nova.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shortcuts = InitSettingsSource(settings_cls, init_kwargs=_shortcut_env(os.environ))
        return (init_settings, env_settings, shortcuts, _file_source(settings_cls))


def _shortcut_env(environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    nested: dict[str, dict[str, str]] = {}
    for variable, (section, key) in ENV_SHORTCUTS.items():
        if variable in environ:
            nested.setdefault(section, {})[key] = environ[variable]
    return nested


# The file chosen by load_settings(); a contextvar rather than os.environ so loading settings
# never mutates the process environment (which function instances would inherit).
_config_file: ContextVar[Path | None] = ContextVar("nova_config_file", default=None)


def _file_source(settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
    path = _config_file.get() or (
        Path(os.environ["NOVA_CONFIG"]) if "NOVA_CONFIG" in os.environ else None
    )
    return InitSettingsSource(settings_cls, init_kwargs=read_config_file(path) if path else {})


class ConfigFileError(ValueError):
    pass


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON config file into the nested settings shape."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigFileError(
            f"config file {path} is not valid {path.suffix or 'YAML'}: {exc}"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path} must hold a mapping of sections")
    unknown = sorted(str(key) for key in data if key not in Settings.model_fields)
    if unknown:
        raise ConfigFileError(
            f"config file {path} has unknown section(s) {', '.join(unknown)}; the sections are "
            f"{', '.join(Settings.model_fields)} (README, Configuration)"
        )
    return data


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build Settings with the documented precedence: overrides > env > file > defaults."""
    token = _config_file.set(config_file)
    try:
        return Settings(**(overrides or {}))
    finally:
        _config_file.reset(token)
