"""Building every service of a daemon from its settings: the store, sandboxes, pools, executor,
event sources, observability and auth, wired together."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from nova.api.context import Services
from nova.auth.audit import AuditLog
from nova.auth.service import KeyService
from nova.auth.tokens import load_pepper
from nova.auth.verifier import KeyVerifier
from nova.canary.analyzer import CanaryAnalyzer
from nova.code.cache import CodeCache
from nova.config import (
    Settings,
)
from nova.core.counters import DaemonCounters
from nova.core.errors import ConfigInvalid, NovaError
from nova.core.models import FunctionConfig
from nova.core.queue_triggers import QueueTrigger
from nova.daemon.components import (
    code_policy,
    configured_master_key,
    configured_pepper,
    function_limits,
    invocation_tracer,
    master_key_file,
)
from nova.environments.registry import EnvironmentRegistry
from nova.events.invocations import AsyncInvocations
from nova.events.worker import AsyncWorker, ConfigOf, WorkerLimits
from nova.executor.env_concurrency import EnvironmentConcurrency
from nova.executor.executor import Executor
from nova.functions.deployer import Deployer
from nova.functions.follower import ChangeFollower
from nova.functions.quota_checks import QuotaChecks
from nova.functions.releases import ReleaseService
from nova.functions.resolver import FunctionResolver
from nova.functions.service import FunctionService
from nova.functions.snapshots import SnapshotService
from nova.http_triggers.service import RouteService
from nova.observability.counter_flusher import CounterFlusher
from nova.observability.daemon_metrics import DaemonCollector, PoolSample
from nova.observability.event_metrics import MESSAGE_RESULTS, EventSourceCollector, TriggerSample
from nova.observability.invocation_logs import InvocationLogBatcher, LogLimits
from nova.observability.log_retention import LogRetention
from nova.observability.log_spool import LogSpool
from nova.observability.metrics import InvocationMetrics
from nova.observability.prometheus import MetricsRegistry
from nova.observability.trigger_metrics import TriggerMetrics
from nova.pool.function_pool import FunctionPool, PoolLimits
from nova.pool.launcher import SandboxLauncher
from nova.pool.manager import PoolManager
from nova.runtimes.compiler import Compiler
from nova.runtimes.dependencies import DependencyBuilder
from nova.runtimes.registered import RegisteredRuntimes
from nova.runtimes.registry import RuntimeRegistry
from nova.sandbox.selection import build_backends
from nova.schedules.scheduler import Scheduler, SchedulerLimits
from nova.schedules.service import ScheduleService
from nova.secrets.master_key import load_master_key
from nova.secrets.service import SecretService
from nova.store.ports import Store
from nova.store.sql_store import open_store
from nova.triggers.brokers import BrokerUrls, open_broker
from nova.triggers.consumer import ConsumerState, ConsumerTiming, TriggerConsumer
from nova.triggers.manager import TriggerManager
from nova.triggers.service import TriggerService

logger = logging.getLogger("nova.daemon")


async def build_services(settings: Settings) -> Services:
    data_dir = settings.daemon.data_dir.resolve()
    try:
        store = await open_store(settings.database_url)
    except NovaError as exc:
        logger.error("cannot open the store: %s", exc.message)
        raise
    counters = DaemonCounters()
    environments = EnvironmentRegistry(store.environments)
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
        pepper = load_pepper(configured_pepper(settings), data_dir / "auth-pepper")
    except (ValueError, OSError) as exc:
        await store.close()
        raise ConfigInvalid(f"auth pepper: {exc}") from None
    verifier = (
        KeyVerifier(store.api_keys, pepper, touch_every_s=settings.auth.last_used_flush_s)
        if settings.auth.enabled
        else None
    )
    try:
        key_source = load_master_key(
            configured_master_key(settings), master_key_file(settings, data_dir)
        )
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
    environment_concurrency = EnvironmentConcurrency(environments.quotas)
    executor = Executor(
        resolver,
        batcher,
        executor_settings.timeout_grace_s,
        counters,
        invocation_metrics if metric_settings.enabled else None,
        tracer,
        environments=environment_concurrency,
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
            quota_checks=QuotaChecks(environments.quotas, store.functions),
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
            quotas=environments.all_quotas,
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
        environments=environments,
        environment_concurrency=environment_concurrency,
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


def _pool_sample(pool: FunctionPool) -> PoolSample:
    deployment = pool.deployment
    return PoolSample(
        deployment.name, deployment.version, deployment.config.backend, pool.state_counts()
    )
