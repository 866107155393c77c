"""The composition root: the only place that picks concrete implementations (main.py runs
the daemon, services.py builds its services, components.py and gates.py turn settings into
parts, lifecycle.py starts and stops them).

Lifecycle: start-up (store, runtimes, backend, pools, example) -> serve -> drain (still
listening, new invocations get 503 while in-flight ones finish, up to daemon.shutdown_timeout_s;
a second SIGINT forces exit; see nova.server) -> stop every instance, flush invocation logs,
close the store.
"""

from nova.daemon.main import run_daemon

__all__ = ["run_daemon"]
