"""Global options and the injectable ports every command reads from the Typer context.

Tests pass a :class:`Ports` as the context object (``CliRunner().invoke(app, args,
obj=Ports(transport=httpx.MockTransport(handler)))``); the root callback wraps it, with the global
options, into a :class:`CliState`. Nothing here imports httpx or rich at runtime.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nova.core.models import MAX_TIMEOUT_S

if TYPE_CHECKING:
    import httpx

    from nova.cli.client import ApiClient
    from nova.cli.render import Renderer

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
DEFAULT_DATA_DIR = Path(".nova-data")
DEFAULT_TIMEOUT_S = 60.0
# How long `nova invoke` waits for its answer unless --timeout says otherwise: as long as a
# function may run, plus room for a cold start and the queue of a function at max_replicas.
INVOKE_WAIT_S = MAX_TIMEOUT_S + 120.0


@dataclass(frozen=True)
class Ports:
    """What the CLI touches outside the process, other than stdio (which CliRunner swaps)."""

    transport: httpx.BaseTransport | None = None  # None: a real connection
    sleep: Callable[[float], None] = time.sleep


@dataclass
class CliState:
    endpoint: str = DEFAULT_ENDPOINT
    json_output: bool = False
    debug: bool = False
    timeout_s: float | None = None  # --timeout; None: not given
    api_key: str | None = None  # --api-key / NOVA_API_KEY; None: <data_dir>/admin-key
    data_dir: Path = DEFAULT_DATA_DIR
    environment: str | None = None  # --env / NOVA_ENV: org/project/env; None: the key's own
    ports: Ports = field(default_factory=Ports)
    _client: ApiClient | None = field(default=None, init=False, repr=False)
    _renderer: Renderer | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> ApiClient:
        """The API client, built on first use (so commands that never call it never pay)."""
        if self._client is None:
            from nova.cli.client import ApiClient

            self._client = ApiClient(
                self.endpoint,
                timeout_s=self.timeout_s or DEFAULT_TIMEOUT_S,
                transport=self.ports.transport,
                debug=self.debug,
                api_key=self.api_key or read_admin_key(self.data_dir),
                environment=self.environment,
            )
        return self._client

    def invoke_timeout(self) -> httpx.Timeout:
        """The timeouts of an invoke: --timeout for everything when given; otherwise the usual
        ones to connect and send, and no shorter a wait for the answer than a function may
        run."""
        import httpx

        if self.timeout_s is not None:
            return httpx.Timeout(self.timeout_s)
        return httpx.Timeout(DEFAULT_TIMEOUT_S, read=INVOKE_WAIT_S)

    @property
    def out(self) -> Renderer:
        if self._renderer is None:
            from nova.cli.render import Renderer

            self._renderer = Renderer()
        return self._renderer

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def read_admin_key(data_dir: Path) -> str | None:
    """The admin key a daemon with this data dir wrote on its first start (None: no file)."""
    try:
        return (data_dir / "admin-key").read_text().strip() or None
    except OSError:
        return None


def normalize_endpoint(endpoint: str) -> str:
    """``localhost:9000`` → ``http://localhost:9000``; no trailing slash."""
    endpoint = endpoint.strip().rstrip("/")
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    return endpoint


def state_of(ctx: typer.Context) -> CliState:
    """The CliState the root callback stored (a default one when a command runs alone)."""
    obj = ctx.find_root().obj
    if isinstance(obj, CliState):
        return obj
    state = CliState(ports=obj if isinstance(obj, Ports) else Ports())
    ctx.find_root().obj = state
    return state
