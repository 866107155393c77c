"""The composition root: the only place that picks concrete implementations.

Lifecycle: start-up (store, runtimes, backend, pools, example) -> serve -> drain (still
listening, new invocations get 503 while in-flight ones finish, up to daemon.shutdown_timeout_s;
a second SIGINT forces exit; see nova.server) -> stop every instance, flush invocation logs,
close the store.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.types import ASGIApp, Scope

from nova.api.app import create_app
from nova.api.audit_trail import AuditTrail, refusal_recorder
from nova.api.auth_gate import AuthGate, Refusal
from nova.api.context import Services
from nova.api.http_trigger import is_trigger_request
from nova.api.rate_limit import RateLimitGate
from nova.auth.audit import AuditLog
from nova.auth.jwt_tokens import JwtPolicy, JwtVerifier, load_jwks
from nova.auth.permissions import PublicPaths
from nova.auth.service import KeyService
from nova.auth.tokens import load_pepper
from nova.auth.verifier import KeyVerifier
from nova.canary.analyzer import CanaryAnalyzer
from nova.code.cache import CodeCache
from nova.code.policy import CodePolicy
from nova.config import (
    ConfigFileError,
    JwtSettings,
    RateLimitSettings,
    Settings,
    TracingSettings,
    load_settings,
)
from nova.core.auth import Role
from nova.core.counters import DaemonCounters
from nova.core.errors import ConfigInvalid, DaemonStartFailed, NovaError
from nova.core.models import FunctionConfig
from nova.core.queue_triggers import QueueTrigger
from nova.events.invocations import AsyncInvocations
from nova.events.worker import AsyncWorker, ConfigOf, WorkerLimits
from nova.examples import EXAMPLE_NAME, ensure_example
from nova.executor.executor import Executor
from nova.functions.deployer import Deployer
from nova.functions.follower import ChangeFollower
from nova.functions.releases import ReleaseService
from nova.functions.resolver import FunctionResolver
from nova.functions.rules import FunctionLimits
from nova.functions.service import FunctionService
from nova.functions.snapshots import SnapshotService
from nova.http_triggers.service import RouteService
from nova.images.debootstrap import DebootstrapBuilder, host_mirror, host_suite
from nova.images.recipe import ImagePolicy, debian_recipes
from nova.images.service import ImageService
from nova.images.store import ImageStore
from nova.observability.counter_flusher import CounterFlusher
from nova.observability.daemon_metrics import DaemonCollector, PoolSample
from nova.observability.event_metrics import MESSAGE_RESULTS, EventSourceCollector, TriggerSample
from nova.observability.invocation_logs import InvocationLogBatcher, LogLimits
from nova.observability.log_retention import LogRetention
from nova.observability.log_spool import LogSpool
from nova.observability.logging import configure_logging
from nova.observability.metrics import InvocationMetrics
from nova.observability.prometheus import MetricsRegistry
from nova.observability.tracing import InvocationTracer, tracer_provider
from nova.observability.trigger_metrics import TriggerMetrics
from nova.pool.function_pool import FunctionPool, PoolLimits
from nova.pool.launcher import SandboxLauncher
from nova.pool.manager import PoolManager
from nova.ratelimit.buckets import MemoryBuckets, SharedBuckets, Tier
from nova.ratelimit.policy import RatePolicy
from nova.runtimes.compiler import Compiler
from nova.runtimes.dependencies import DependencyBuilder
from nova.runtimes.registered import RegisteredRuntimes
from nova.runtimes.registry import RuntimeRegistry
from nova.sandbox.container.backend import ContainerBackend
from nova.sandbox.container.roots import image_mount_points
from nova.sandbox.microvm.backend import MicrovmBackend
from nova.sandbox.registry import BackendUnavailable
from nova.sandbox.selection import build_backends
from nova.schedules.scheduler import Scheduler, SchedulerLimits
from nova.schedules.service import ScheduleService
from nova.secrets.master_key import load_master_key
from nova.secrets.service import SecretService
from nova.server import DrainingServer
from nova.store.ports import Store
from nova.store.sql_store import open_store
from nova.triggers.brokers import BrokerUrls, open_broker
from nova.triggers.consumer import ConsumerState, ConsumerTiming, TriggerConsumer
from nova.triggers.manager import TriggerManager
from nova.triggers.service import TriggerService

logger = logging.getLogger("nova.daemon")


def run_daemon(config_file: Path | None, overrides: dict[str, Any], deploy_example: bool) -> None:
    """Run until signalled and return after a clean shutdown.

    Raises ConfigInvalid when the settings are wrong and DaemonStartFailed when the daemon
    could not start serving (the log above says why); the CLI maps them to exit codes.
    """
    try:
        settings = load_settings(config_file, overrides)
    except (ConfigFileError, ValidationError) as exc:
        raise ConfigInvalid(f"invalid configuration: {exc}") from exc
    configure_logging(settings.logging.level, settings.logging.format)
    check_exposure(settings)
    settings.daemon.data_dir.mkdir(parents=True, exist_ok=True)
    built: list[Services] = []  # filled by the lifespan once the services exist
    closers: list[Callable[[], Awaitable[None]]] = []  # what the lifespan closes at the end

    def audit() -> AuditLog:
        return built[0].audit

    app = create_app(
        lambda api: _lifespan(api, settings, deploy_example, built, closers),
        lambda routes: AuditTrail(routes, audit),
    )
    app = rate_limited(app, settings.rate_limits, closers)
    app = authenticated(app, settings, built, refusal_recorder(audit))

    async def drain(timeout_s: float) -> bool:
        return await built[0].executor.inflight.drain(timeout_s) if built else True

    server = DrainingServer(
        uvicorn.Config(
            app,
            host=settings.daemon.host,
            port=settings.daemon.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_config=None,
            access_log=False,
            # Nova uses no client address, so X-Forwarded-* rewriting is pure per-request cost.
            proxy_headers=False,
            timeout_graceful_shutdown=int(settings.daemon.shutdown_timeout_s),
        ),
        drain,
        settings.daemon.shutdown_timeout_s,
    )
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 3 when it cannot bind or the lifespan fails
        raise DaemonStartFailed(_START_FAILED) from exc
    if not server.started:
        raise DaemonStartFailed(_START_FAILED)


_START_FAILED = "the daemon did not start; the log lines above say why"


@asynccontextmanager
async def _lifespan(
    api: FastAPI,
    settings: Settings,
    deploy_example: bool,
    built: list[Services],
    closers: list[Callable[[], Awaitable[None]]],
) -> AsyncIterator[None]:
    started_at = time.monotonic()
    services = await build_services(settings)
    api.state.services = services
    built.append(services)
    api.state.images = images = runtime_images(settings, services)
    try:
        await services.log_batcher.start()
        services.log_retention.start()
        await services.secrets.start()  # finishes a master-key rotation left half done
        if services.verifier is not None:
            admin_key = await services.keys.bootstrap(admin_key_file(settings))
            if admin_key is not None:
                show_admin_key(admin_key, admin_key_file(settings))
            await services.verifier.start()
        await services.follower.start()
        await services.triggers.manager.reconcile()
        services.audit.start()
        services.canary.start()
        services.counters.start()
        services.pools.start_background()
        services.async_worker.start()
        await services.http_routes.start()
        if settings.schedules.enabled:
            services.scheduler.start()
        await _prewarm(services)
        if deploy_example:
            await ensure_example(services.functions)
        services.started = True
        _announce(settings, deploy_example, time.monotonic() - started_at)
        yield
    finally:
        await images.close()  # stops image builds still running
        await shutdown(services)
        for close in closers:
            await close()


async def build_services(settings: Settings) -> Services:
    data_dir = settings.daemon.data_dir.resolve()
    try:
        store = await open_store(settings.database_url)
    except NovaError as exc:
        logger.error("cannot open the store: %s", exc.message)
        raise
    counters = DaemonCounters()
    try:
        runtimes = await asyncio.to_thread(RuntimeRegistry.detect_builtin)
        registered = RegisteredRuntimes(data_dir / "runtimes.json")
        for definition in await asyncio.to_thread(registered.load):
            runtimes.register(definition)
        sandboxes = build_backends(settings, counters)
    except BaseException:
        await store.close()
        raise
    for status in runtimes.all():
        if not status.available and status.spec.unsupported is None:  # not merely "not yet"
            logger.warning("runtime %s unavailable: %s", status.spec.name, status.reason)
    pool_settings = settings.pool
    try:
        pepper = load_pepper(_pepper(settings), data_dir / "auth-pepper")
    except (ValueError, OSError) as exc:
        await store.close()
        raise ConfigInvalid(f"auth pepper: {exc}") from None
    verifier = (
        KeyVerifier(store.api_keys, pepper, touch_every_s=settings.auth.last_used_flush_s)
        if settings.auth.enabled
        else None
    )
    try:
        key_source = load_master_key(_master_key(settings), _key_file(settings, data_dir))
    except (ValueError, OSError) as exc:
        await store.close()
        logger.error("cannot load the master key: %s", exc)
        raise ConfigInvalid(f"master key: {exc}") from None
    # A secret set through this daemon replaces the instances using it here at once; other
    # daemons do it when their follower reads the change.
    secrets = SecretService(
        store.secrets, key_source, lambda name: pools.renew_secret_users(name, time.time())
    )
    launcher = SandboxLauncher(
        sandboxes,
        data_dir / "instances",
        pool_settings.start_timeout_s,
        settings.executor.max_message_bytes,
        secrets,
    )
    pools = PoolManager(
        launcher,
        PoolLimits(
            pool_settings.queue_timeout_s,
            pool_settings.max_queue_per_function,
            pool_settings.health_check_timeout_s,
        ),
        idle_ttl_s=pool_settings.idle_ttl_s,
        cleanup_interval_s=pool_settings.cleanup_interval_s,
        health_check_interval_s=pool_settings.health_check_interval_s,
        counters=counters,
        finish_grace_s=settings.executor.timeout_grace_s,
    )
    executor_settings = settings.executor
    builder = DependencyBuilder(data_dir / "builds", settings.code.dependency_build_timeout_s)
    compile_settings = settings.compile
    compiler = Compiler(
        data_dir / "compiled",
        compile_settings.cache_dir or data_dir / "toolchain-cache",
        compile_settings.timeout_s,
        compile_settings.concurrency,
    )
    deployer = Deployer(
        store,
        pools,
        CodeCache(data_dir / "code"),
        runtimes,
        sandboxes,
        builder,
        compiler,
        compile_settings.wait_s,
    )
    resolver = FunctionResolver(store, deployer)
    batcher = InvocationLogBatcher(
        store.invocations,
        LogSpool(
            executor_settings.log_spool_dir or data_dir / "log-spool",
            executor_settings.log_spool_max_bytes,
        ),
        LogLimits(
            batch_size=executor_settings.log_batch_size,
            buffer_size=executor_settings.log_buffer_size,
            flush_interval_s=executor_settings.log_flush_interval_ms / 1000,
            write_timeout_s=executor_settings.log_timeout_s,
            retry_interval_s=executor_settings.log_retry_interval_s,
            wait_timeout_s=executor_settings.log_backpressure_timeout_s,
        ),
    )
    metric_settings = settings.metrics
    invocation_metrics = InvocationMetrics(
        metric_settings.latency_buckets_s,
        metric_settings.cold_start_buckets_s,
        metric_settings.max_error_types,
    )
    tracer = invocation_tracer(settings.tracing)
    executor = Executor(
        resolver,
        batcher,
        executor_settings.timeout_grace_s,
        counters,
        invocation_metrics if metric_settings.enabled else None,
        tracer,
    )
    daemon_metrics = DaemonCollector(
        lambda: map(_pool_sample, pools.all()),
        sandboxes.default,
        counters.as_dict,
        batcher.stats,
        lambda: executor.inflight.count,
        store.transaction_timings.snapshot,
    )
    invocations = AsyncInvocations(
        store.events,
        resolver.resolve,
        settings.daemon.max_payload_bytes,
        counters,
        settings.events.poll_s,
    )

    async def config_of(name: str, qualifier: str | None) -> FunctionConfig:
        return (await resolver.resolve(name, qualifier)).deployment.config

    events = settings.events
    worker = AsyncWorker(
        store.events,
        executor,
        config_of,
        invocations.signals,
        WorkerLimits(
            concurrency=events.concurrency,
            lease_s=events.lease_s,
            poll_s=events.poll_s,
            retention_s=events.retention_days * 86400,
        ),
        counters,
        is_closing=lambda: executor.inflight.closing,
    )
    triggers = trigger_service(settings, store, executor, config_of, invocations, resolver)
    event_sources = EventSourceCollector(
        lambda: map(_trigger_sample, triggers.manager.consumers()), invocations.stats
    )
    trigger_metrics = TriggerMetrics()
    schedule_settings = settings.schedules
    return Services(
        settings=settings,
        store=store,
        functions=FunctionService(
            store,
            resolver,
            deployer,
            runtimes,
            sandboxes,
            code_policy(settings),
            function_limits(settings),
        ),
        releases=ReleaseService(store, resolver.refresh),
        resolver=resolver,
        executor=executor,
        pools=pools,
        runtimes=runtimes,
        registered_runtimes=registered,
        sandboxes=sandboxes,
        log_batcher=batcher,
        log_retention=LogRetention(
            store.invocations,
            executor_settings.log_retention_days,
            executor_settings.log_retention_interval_s,
            executor_settings.log_retention_per_function,
        ),
        follower=ChangeFollower(
            store.changes,
            resolver.refresh,
            resolver.refresh_all,
            poll_s=settings.store.change_poll_s,
            retention_s=settings.store.change_retention_s,
            secret_changed=pools.renew_secret_users,
            triggers_changed=triggers.manager.reconcile,
            keys_changed=verifier.reload if verifier is not None else None,
        ),
        canary=CanaryAnalyzer(store, resolver.refresh, settings.canary.check_interval_s),
        counters=CounterFlusher(store.counters, counters, settings.store.counters_flush_s),
        invocations=invocations,
        async_worker=worker,
        triggers=triggers,
        secrets=secrets,
        snapshots=SnapshotService(
            resolver, launcher, sandboxes, pools, eager=settings.sandbox.snapshots == "eager"
        ),
        metrics=MetricsRegistry(
            [invocation_metrics, daemon_metrics, trigger_metrics, event_sources],
            [event_sources.refresh],
        ),
        series=invocation_metrics.series,
        tracer=tracer,
        http_routes=RouteService(store.routes, secrets, settings.http_triggers.refresh_s),
        schedules=ScheduleService(store.schedules, settings.daemon.max_payload_bytes),
        scheduler=Scheduler(
            store.schedules,
            invocations.signals.submitted,
            trigger_metrics,
            SchedulerLimits(
                schedule_settings.poll_s, schedule_settings.grace_s, schedule_settings.max_catch_up
            ),
        ),
        trigger_metrics=trigger_metrics,
        keys=KeyService(store.api_keys, pepper, verifier.reload if verifier else None),
        verifier=verifier,
        audit=AuditLog(store.audit),
        started_at=time.monotonic(),
    )


def trigger_service(
    settings: Settings,
    store: Store,
    executor: Executor,
    config_of: ConfigOf,
    invocations: AsyncInvocations,
    resolver: FunctionResolver,
) -> TriggerService:
    """Queue triggers: one consumer per enabled trigger, each on the broker its source
    names, invoking through the executor."""
    config = settings.triggers
    urls = BrokerUrls(
        nats=config.nats_url.get_secret_value(),
        rabbitmq=config.rabbitmq_url.get_secret_value(),
        redis=config.redis_url.get_secret_value(),
    )
    timing = ConsumerTiming(
        ack_wait_s=config.ack_wait_s,
        reconnect_initial_s=config.reconnect_initial_s,
        reconnect_max_s=config.reconnect_max_s,
        lag_interval_s=config.lag_interval_s,
    )
    daemon_id = uuid.uuid4().hex[:12]  # names this daemon's Redis consumers

    def consumer(trigger: QueueTrigger) -> TriggerConsumer:
        broker = open_broker(trigger, urls, daemon_id, config.ack_wait_s)
        return TriggerConsumer(
            trigger,
            broker,
            executor,
            config_of,
            invocations,
            settings.daemon.max_payload_bytes,
            timing,
        )

    manager = TriggerManager(store.triggers, consumer, settings.daemon.shutdown_timeout_s)
    return TriggerService(store.triggers, manager, resolver.resolve)


def _trigger_sample(consumer: TriggerConsumer) -> TriggerSample:
    stats = consumer.stats
    return TriggerSample(
        trigger=consumer.trigger.name,
        source=consumer.trigger.source.value,
        connected=consumer.state is ConsumerState.CONNECTED,
        reconnects=stats.reconnects,
        counts={result: getattr(stats, result) for result in MESSAGE_RESULTS},
        lag=stats.lag,
    )


def invocation_tracer(tracing: TracingSettings) -> InvocationTracer | None:
    """Spans exported with OTLP over HTTP when tracing is on (the exporter is imported only
    then)."""
    if not tracing.enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=tracing.otlp_endpoint)
    provider = tracer_provider(exporter, tracing.sampling_ratio, tracing.service_name)
    logger.info(
        "tracing on: %g of traces sampled, spans to %s",
        tracing.sampling_ratio,
        tracing.otlp_endpoint,
    )
    return InvocationTracer(provider, tracing.sampling_ratio)


def _pool_sample(pool: FunctionPool) -> PoolSample:
    deployment = pool.deployment
    return PoolSample(
        deployment.name, deployment.version, deployment.config.backend, pool.state_counts()
    )


def rate_limited(
    app: ASGIApp, limits: RateLimitSettings, closers: list[Callable[[], Awaitable[None]]]
) -> ASGIApp:
    """``app`` behind the rate-limit gate when limits are on (else ``app`` itself: no cost),
    with buckets in Redis when a URL is configured, else in this daemon's memory."""
    if not limits.enabled:
        return app
    tiers = {name: Tier(name, tier.rps, tier.burst) for name, tier in limits.tiers.items()}
    policy = RatePolicy(tiers, limits.default_tier, limits.keys, limits.functions)
    url = limits.redis_url.get_secret_value()
    buckets: MemoryBuckets | SharedBuckets = MemoryBuckets()
    if url:
        from nova.ratelimit.redis_buckets import RedisBuckets  # redis only when configured

        buckets = RedisBuckets(url, limits.redis_prefix)
        closers.append(buckets.close)
    logger.info(
        "rate limits on: %d tier(s), buckets %s",
        len(tiers),
        "in Redis (shared by daemons with the same prefix)" if url else "in memory",
    )
    return RateLimitGate(app, policy, buckets)


def authenticated(
    app: ASGIApp, settings: Settings, built: list[Services], refused: Refusal
) -> ASGIApp:
    """``app`` behind the authentication gate (unless auth is off), whose verifier the
    lifespan builds: no request is served before it has."""
    if not settings.auth.enabled:
        return app

    def verifier() -> KeyVerifier:
        key_verifier = built[0].verifier
        if key_verifier is None:  # cannot happen: auth on builds one
            raise TypeError("authentication is on but no verifier was built")
        return key_verifier

    public = PublicPaths(settings.auth.public_paths)
    tokens = jwt_verifier(settings.auth.jwt)

    def is_trigger(scope: Scope) -> bool:
        return is_trigger_request(built[0] if built else None, scope)

    return AuthGate(
        app, verifier, public, refused, tokens, settings.daemon.max_payload_bytes, is_trigger
    )


def jwt_verifier(settings: JwtSettings) -> JwtVerifier | None:
    """The JWT checker when a secret or JWKS file is configured (ConfigInvalid if unusable)."""
    if not settings.enabled:
        return None
    try:
        jwks = load_jwks(settings.jwks_file) if settings.jwks_file is not None else None
    except ValueError as exc:
        raise ConfigInvalid(f"auth.jwt.jwks_file: {exc}") from None
    secret = settings.hs256_secret
    roles = {role.value: role for role in Role}
    policy = JwtPolicy(
        algorithms=tuple(settings.algorithms),
        hs256_secret=secret.get_secret_value().encode() if secret is not None else None,
        jwks=jwks,
        issuer=settings.issuer,
        audience=settings.audience,
        leeway_s=settings.leeway_s,
        role_claim=settings.role_claim,
        scope_claim=settings.scope_claim,
        role_map={**roles, **{claim: Role(role) for claim, role in settings.role_map.items()}},
        default_role=Role(settings.default_role) if settings.default_role else None,
    )
    logger.info("JWTs accepted: %s", ", ".join(settings.algorithms))
    return JwtVerifier(policy)


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without authentication beyond loopback unless told it is on purpose."""
    daemon = settings.daemon
    if settings.auth.enabled or daemon.insecure or is_loopback_host(daemon.host):
        return
    raise ConfigInvalid(
        f"authentication is off (auth.enabled=false) and the API would listen on {daemon.host}: "
        "anyone reaching it could deploy and run code; listen on 127.0.0.1 (--host), turn "
        "authentication on, or pass --insecure (NOVA_DAEMON__INSECURE=true) if this network is "
        "trusted"
    )


def admin_key_file(settings: Settings) -> Path:
    return settings.auth.admin_key_file or settings.daemon.data_dir.resolve() / "admin-key"


def show_admin_key(key: str, path: Path) -> None:
    """Print the new admin key to the terminal, once (never to the log)."""
    sys.stderr.write(
        "\n  Nova created its admin API key (shown this once; also in "
        f"{path}, mode 0600):\n\n    {key}\n\n"
        f'  curl -H "Authorization: Bearer $(cat {path})" ...   the nova CLI on this host '
        "reads it by itself\n\n"
    )
    sys.stderr.flush()


def _pepper(settings: Settings) -> str | None:
    configured = settings.auth.pepper
    return configured.get_secret_value() if configured is not None else None


def _master_key(settings: Settings) -> str | None:
    configured = settings.secrets.master_key
    return configured.get_secret_value() if configured is not None else None


def _key_file(settings: Settings, data_dir: Path) -> Path:
    return settings.secrets.key_file or data_dir / "master-key"


def code_policy(settings: Settings) -> CodePolicy:
    code = settings.code
    limits = code.model_dump(exclude={"allowed_paths", "dependency_build_timeout_s"})
    return CodePolicy(**limits, allowed_paths=tuple(code.allowed_paths))


def function_limits(settings: Settings) -> FunctionLimits:
    return FunctionLimits(**settings.functions.model_dump())


def runtime_images(settings: Settings, services: Services) -> ImageService:
    """Runtime images under <data_dir>/images (nova.images), built with debootstrap from the
    host's Debian mirror; container instances run on the ones the policy picks (gVisor and
    process instances stay on the host root)."""
    policy = ImagePolicy.parse(settings.sandbox.image, dict(settings.sandbox.runtime_images))
    suite = host_suite()
    store = ImageStore(
        settings.daemon.data_dir.resolve() / "images",
        debian_recipes(suite, image_mount_points()),
        DebootstrapBuilder(host_mirror(suite)),
    )
    try:
        microvm = services.sandboxes.get("microvm")
    except BackendUnavailable:
        microvm = None
    try:
        container = services.sandboxes.get("container")
    except BackendUnavailable:
        container = None
    if not isinstance(container, ContainerBackend):
        if isinstance(microvm, MicrovmBackend):  # VMs always boot a debian image
            images = ImageService(store, ImagePolicy(), None)
            microvm.use_images(images)
            images.use_vm_drives(microvm)
            return images
        if policy != ImagePolicy():
            logger.warning("sandbox.image applies to container instances only: ignored")
        return ImageService(store, ImagePolicy(), None)
    images = ImageService(store, policy, container.host_image_id)
    container.use_images(images)
    if isinstance(microvm, MicrovmBackend):
        microvm.use_images(images)
        images.use_vm_drives(microvm)
    images.prebuild()
    return images


async def _prewarm(services: Services) -> None:
    """Start min_replicas instances of every function's $LATEST, and of every version an
    alias routes to, whose config asks for them."""
    cursor: str | None = None
    while True:
        page = await services.store.functions.list(limit=500, cursor=cursor)
        for record in page.items:
            try:
                if record.config.min_replicas > 0:
                    await services.resolver.resolve(record.name)
                for alias in await services.store.aliases.of(record.name):
                    for route in alias.routing:
                        version = await services.store.versions.get(record.name, route.version)
                        if version.config.min_replicas > 0:
                            await services.resolver.resolve(record.name, str(route.version))
            except NovaError as exc:
                logger.warning("cannot pre-warm %s: %s", record.name, exc.message)
        if page.next is None:
            return
        cursor = page.next


async def shutdown(services: Services) -> None:
    timeout_s = services.settings.daemon.shutdown_timeout_s
    # No new messages; those running finish (or go back to their broker unacknowledged).
    await services.triggers.manager.close()
    await services.scheduler.close()  # no new ticks: what it queued runs or waits in the store
    await services.http_routes.close()
    # No new claims; events running finish within the drain below (or keep their leases and
    # run again after the restart).
    await services.async_worker.close(timeout_s)
    if not await services.executor.inflight.drain(timeout_s):
        logger.warning(
            "%d invocation(s) still running after %.0fs; stopping them",
            services.executor.inflight.count,
            timeout_s,
        )
    await services.snapshots.close()
    await services.pools.close()
    await services.sandboxes.close()
    await services.canary.close()
    await services.follower.close()
    if services.verifier is not None:
        await services.verifier.close()  # writes the last uses still held
    await services.log_retention.close()
    await services.log_batcher.close()
    await services.audit.close()  # the refusals still buffered
    await services.counters.close()  # after the drain: the last invocations are counted
    if services.tracer is not None:
        await asyncio.to_thread(services.tracer.shutdown)  # exports the spans still pending
    await services.store.close()
    logger.info("nova stopped")


def _announce(settings: Settings, example: bool, elapsed_s: float) -> None:
    host = "127.0.0.1" if settings.daemon.host in ("0.0.0.0", "::") else settings.daemon.host
    url = f"http://{host}:{settings.daemon.port}"
    logger.info(
        "nova ready in %.2fs on %s (data dir %s)",
        elapsed_s,
        url,
        settings.daemon.data_dir.resolve(),
    )
    if not settings.auth.enabled:
        logger.warning(
            "authentication is off (auth.enabled=false): anyone who can reach %s:%d can deploy "
            "and run code here",
            settings.daemon.host,
            settings.daemon.port,
        )
    if example:
        # The command as it was started (e.g. .venv/bin/nova under `make run`), so the hint
        # works even when nova is not on PATH.
        nova = sys.argv[0] if sys.argv[0].endswith("nova") else "nova"
        endpoint = "" if url == "http://127.0.0.1:9000" else f" --endpoint {url}"
        key_file = settings.auth.admin_key_file or settings.daemon.data_dir / "admin-key"
        if key_file != Path(".nova-data/admin-key"):
            endpoint += f" --data-dir {settings.daemon.data_dir}"
        bearer = f'-H "Authorization: Bearer $(cat {key_file})" ' if settings.auth.enabled else ""
        logger.info(
            'try it: curl -s %s-X POST %s/functions/%s/invoke -d \'{"name": "Ada"}\'  or  %s%s invoke %s --data \'{"name": "Ada"}\'',
            bearer,
            url,
            EXAMPLE_NAME,
            nova,
            endpoint,
            EXAMPLE_NAME,
        )


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an address or a name) only listens where this machine can reach it."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
