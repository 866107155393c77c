"""`python -m bench.auth`: what authenticating one request costs, in µs of CPU.

Runs the authentication gate's own work per request - find the key header, HMAC-SHA256 the
key with the pepper, look the hash up among ``--keys`` keys held in memory, check enabled and
expiry, note the use, find the endpoint's rule and check the role - for a warm invoke request,
``--calls`` times, and prints the CPU per call (the minimum of ``--rounds`` is the steadiest
figure on a noisy host). No HTTP, no store read: that is the point of the design.

    .venv/bin/python -m bench.auth [--calls 200000] [--keys 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from nova.api.auth_gate import AuthGate
from nova.auth.permissions import PublicPaths
from nova.auth.service import KeyService
from nova.auth.verifier import KeyVerifier
from nova.store.memory import MemoryStore

PEPPER = b"bench-pepper-0123456789abcdef"


async def _app(scope: object, receive: object, send: object) -> None:
    return None


async def main(calls: int, keys: int, rounds: int) -> None:
    store = MemoryStore()
    service = KeyService(store.api_keys, PEPPER)
    for number in range(keys - 1):
        await service.create(f"key-{number}", "invoker")
    token = (await service.create("bench", "developer")).token.encode()
    verifier = KeyVerifier(store.api_keys, PEPPER)
    await verifier.reload()
    gate = AuthGate(_app, lambda: verifier, PublicPaths(["/health"]))
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer " + token),
    ]
    scope = {"type": "http", "method": "POST", "path": "/functions/hello/invoke"}
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            await gate(dict(scope, headers=headers), _app, _app)  # type: ignore[arg-type]
        samples.append((time.process_time() - started) / calls * 1e6)
    spread = ", ".join(f"{sample:.2f}" for sample in samples)
    print(
        f"authenticate + authorize one invoke ({keys} keys): min {min(samples):.2f}, "
        f"median {statistics.median(samples):.2f} µs CPU per request  ({spread})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.keys, args.rounds))
