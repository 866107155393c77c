"""`python -m bench.hotpath`: the daemon's own CPU per warm invocation, without HTTP.

Builds the daemon's real services (SQLite store with its log writer, a Python hello on the
process backend) in this process and calls the invoke entry point (``InvokeFastPath``) directly
with a prepared ASGI scope, so uvicorn, the client and the network are out of the picture: what
is left is Nova's path from the ASGI call to the response, plus the round trip to the worker.
Prints the CPU this process spent per call (``time.process_time``) over alternating sequential
and 16-way concurrent batches - the minimum is the steadiest figure on a noisy host - and with ``--profile`` the functions that cost the most
(cProfile, which roughly doubles the cost but keeps the proportions).

Use it to judge a change to the hot path in seconds, before the end-to-end `bench.ab`:

    .venv/bin/python -m bench.hotpath [--calls 5000] [--profile]

``--rate-limits memory`` (or ``redis``, on NOVA_REDIS_URL or the local Redis) puts the
rate-limit gate in front, with a tier too large to refuse anything, to price the gate.
``--auth`` puts the authentication gate in front, the request carrying a
developer key (as the daemon does), to price authentication.
``--no-metrics`` turns the per-invocation metrics off; ``--tracing RATIO`` turns tracing on at
that sampling ratio, exporting to an OTLP receiver in this process that discards what it gets
(its CPU counts: exporting is part of the price).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from starlette.types import ASGIApp

from bench.otlp_sink import DiscardingReceiver
from bench.run import EVENT, HELLO, HELLO_FUNCTION
from nova.api.audit_trail import refusal_recorder
from nova.api.invoke import InvokeFastPath
from nova.config import load_settings
from nova.daemon.gates import authenticated, rate_limited
from nova.daemon.lifecycle import shutdown
from nova.daemon.services import build_services
from nova.functions.service import CodeSource

_SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/functions/hello/invoke",
    "query_string": b"",
    "headers": [(b"host", b"bench"), (b"content-type", b"application/json")],
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": EVENT, "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"invoke answered {message['status']}")


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError(f"{scope['path']} is not the invoke path")


async def _batch(app: ASGIApp, calls: int, concurrency: int) -> float:
    """CPU µs per call for ``calls`` invocations, ``concurrency`` at a time."""

    async def one_client(count: int) -> None:
        for _ in range(count):
            await app(_SCOPE, _receive, _send)

    started = time.process_time()
    await asyncio.gather(*(one_client(calls // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / calls * 1e6


def _limits(kind: str) -> dict[str, Any]:
    if kind == "off":
        return {"enabled": False}
    huge = {"default": {"rps": 1e9, "burst": 1_000_000_000}}
    url = os.environ.get("NOVA_REDIS_URL", "redis://127.0.0.1:6379/0") if kind == "redis" else ""
    return {"enabled": True, "tiers": huge, "redis_url": url, "redis_prefix": "nova-bench:"}


async def main(
    calls: int,
    rounds: int,
    profile: bool,
    rate_limits: str = "off",
    metrics: bool = True,
    tracing: float | None = None,
    auth: bool = False,
) -> None:
    receiver = DiscardingReceiver() if tracing is not None else None
    with tempfile.TemporaryDirectory(prefix="nova-hotpath-") as data_dir:
        traces = {"enabled": False}
        if receiver is not None:
            traces = {"enabled": True, "sampling_ratio": tracing, "otlp_endpoint": receiver.url}
        settings = load_settings(
            None,
            {
                "daemon": {"data_dir": data_dir},
                "sandbox": {"backend": "process", "allow_process_backend": True},
                "logging": {"level": "warning"},
                "rate_limits": _limits(rate_limits),
                "metrics": {"enabled": metrics},
                "tracing": traces,
                "auth": {"enabled": auth},
            },
        )
        services = await build_services(settings)
        closers: list[Callable[[], Awaitable[None]]] = []
        await services.log_batcher.start()
        try:
            meta = {key: value for key, value in HELLO_FUNCTION.items() if key != "code"}
            await services.functions.create(meta, CodeSource(code=HELLO))
            app: ASGIApp = InvokeFastPath(_not_found, lambda: services)
            if auth:
                key = (await services.keys.create("bench", "developer")).token
                _SCOPE["headers"] = [
                    *_SCOPE["headers"],
                    (b"authorization", b"Bearer " + key.encode()),
                ]
                refused = refusal_recorder(lambda: services.audit)
                app = authenticated(app, settings, [services], refused)
            app = rate_limited(app, settings.rate_limits, closers)
            await _batch(app, 400, 16)  # start four instances and warm up
            results: dict[str, list[float]] = {"sequential": [], "16 concurrent": []}
            profiler = cProfile.Profile() if profile else None
            for _ in range(rounds):
                if profiler is not None:
                    profiler.enable()
                results["sequential"].append(await _batch(app, calls, 1))
                results["16 concurrent"].append(await _batch(app, calls, 16))
                if profiler is not None:
                    profiler.disable()
        finally:
            await shutdown(services)
            for close in closers:
                await close()
            if receiver is not None:
                receiver.close()
    for label, samples in results.items():
        spread = ", ".join(f"{sample:.0f}" for sample in samples)
        print(
            f"{label:>14}: min {min(samples):6.1f}, median {statistics.median(samples):6.1f} "
            f"µs CPU per call  ({spread})"
        )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=4000, help="invocations per batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    parser.add_argument("--rate-limits", choices=["off", "memory", "redis"], default="off")
    parser.add_argument("--no-metrics", action="store_true", help="per-invocation metrics off")
    parser.add_argument("--tracing", type=float, metavar="RATIO", help="tracing on at RATIO")
    parser.add_argument("--auth", action="store_true", help="authentication gate in front")
    args = parser.parse_args()
    uvloop.run(
        main(
            args.calls,
            args.rounds,
            args.profile,
            args.rate_limits,
            metrics=not args.no_metrics,
            tracing=args.tracing,
            auth=args.auth,
        )
    )
