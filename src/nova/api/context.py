"""What routes may use, built by the daemon (composition root) and stored on app.state."""

from __future__ import annotations

from dataclasses import dataclass

from nova.auth.audit import AuditLog
from nova.auth.service import KeyService
from nova.auth.verifier import KeyVerifier
from nova.canary.analyzer import CanaryAnalyzer
from nova.config import Settings
from nova.environments.registry import EnvironmentRegistry
from nova.events.invocations import AsyncInvocations
from nova.events.worker import AsyncWorker
from nova.executor.env_concurrency import EnvironmentConcurrency
from nova.executor.executor import Executor
from nova.functions.follower import ChangeFollower
from nova.functions.releases import ReleaseService
from nova.functions.resolver import FunctionResolver
from nova.functions.service import FunctionService
from nova.functions.snapshots import SnapshotService
from nova.http_triggers.service import RouteService
from nova.observability.counter_flusher import CounterFlusher
from nova.observability.invocation_logs import InvocationLogBatcher
from nova.observability.log_retention import LogRetention
from nova.observability.prometheus import MetricsRegistry
from nova.observability.timeseries import InvocationSeries
from nova.observability.tracing import InvocationTracer
from nova.observability.trigger_metrics import TriggerMetrics
from nova.pool.manager import PoolManager
from nova.runtimes.registered import RegisteredRuntimes
from nova.runtimes.registry import RuntimeRegistry
from nova.sandbox.registry import BackendRegistry
from nova.schedules.scheduler import Scheduler
from nova.schedules.service import ScheduleService
from nova.secrets.service import SecretService
from nova.store.ports import Store
from nova.triggers.service import TriggerService


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    functions: FunctionService
    releases: ReleaseService
    resolver: FunctionResolver
    executor: Executor
    pools: PoolManager
    runtimes: RuntimeRegistry
    sandboxes: BackendRegistry  # every usable backend, the default, and why others are not
    log_batcher: InvocationLogBatcher
    log_retention: LogRetention
    follower: ChangeFollower  # applies changes made through other daemons
    canary: CanaryAnalyzer
    counters: CounterFlusher  # this daemon's counts, added to the store's running totals
    invocations: AsyncInvocations  # submit and follow asynchronous invocations
    async_worker: AsyncWorker  # runs them
    triggers: TriggerService  # queue triggers and this daemon's consumers of them
    secrets: SecretService
    snapshots: SnapshotService  # function snapshots of every backend, scale to zero
    metrics: MetricsRegistry  # what GET /metrics reports
    series: InvocationSeries  # GET /metrics/timeseries, /functions/{name}/metrics, /slo
    tracer: InvocationTracer | None  # None: tracing is off
    http_routes: RouteService  # custom routes and function URL settings, held in memory
    schedules: ScheduleService
    scheduler: Scheduler  # fires due schedules through the async queue
    trigger_metrics: TriggerMetrics
    keys: KeyService  # API keys: create, list, disable, delete
    verifier: KeyVerifier | None  # None: authentication is off
    audit: AuditLog  # changes and refused requests
    environments: EnvironmentRegistry  # environments and their quotas
    environment_concurrency: EnvironmentConcurrency  # invocations running per environment
    registered_runtimes: RegisteredRuntimes | None = None  # where POST /runtimes keeps them
    started: bool = False
    started_at: float = 0.0
