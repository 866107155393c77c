"""`make bench` rows for Lambda compatibility: warm invokes through the Lambda Invoke API, the
function URL (`/fn/hello/`: the request as a function-URL event, the answer as a response) and
through `provided` bootstraps (the Bash example and the compiled C one), each in rounds that
alternate with native invokes of the Python hello, so all see the same machine."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from bench import client

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "provided"
EVENT = b'{"name":"bench"}'
NATIVE = "/functions/hello/invoke"
LAMBDA = "/2015-03-31/functions/hello/invocations"
FUNCTION_URL = "/fn/hello/"
ROUNDS = 4


def measure(api: httpx.Client, port: int, requests: int) -> dict[str, Any]:
    """Percentile dicts (via ``percentiles``) are made by the caller; raw samples here."""
    paths = {"lambda_invoke": LAMBDA, "function_url": FUNCTION_URL}
    if shutil.which("curl"):
        _create(api, "bench-bash", (EXAMPLES / "bash" / "bootstrap").read_bytes())
        paths["provided_bash"] = "/functions/bench-bash/invoke"
    compiled = _compile_c()
    if compiled is not None:
        _create(api, "bench-c", compiled)
        paths["provided_c"] = "/functions/bench-c/invoke"
    samples: dict[str, list[float]] = {"native_interleaved": []}
    for key in paths:
        samples[key] = []
    for _ in range(ROUNDS):
        samples["native_interleaved"] += client.sequential_latencies_ms(
            port, NATIVE, EVENT, requests // ROUNDS, warmup=20
        )
        for key, path in paths.items():
            # A Bash bootstrap forks curl twice per call: a tenth of the calls say enough.
            count = requests // ROUNDS // (10 if key == "provided_bash" else 1)
            samples[key] += client.sequential_latencies_ms(port, path, EVENT, count, warmup=10)
    return samples


def rows(table: Table, backend: str, result: dict[str, Any]) -> None:
    native = result.get("native_interleaved_ms")
    if native is None:
        return
    labels = {
        "lambda_invoke_ms": "warm via Lambda Invoke API",
        "function_url_ms": "warm via function URL (/fn/hello/)",
        "provided_bash_ms": "warm provided (Bash bootstrap)",
        "provided_c_ms": "warm provided (C bootstrap)",
    }
    for key, label in labels.items():
        if key not in result:
            continue
        value = result[key]
        table.add_row(
            f"{backend}: {label}",
            f"{value['p50']:.3f}",
            f"{value['p95']:.3f}",
            f"{value['p99']:.3f}",
            "-",
            f"p50 {value['p50'] / native['p50']:.2f}x native Python {native['p50']:.3f} "
            "(alternating rounds)",
        )


def _create(api: httpx.Client, name: str, bootstrap: bytes) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        archive.writestr(info, bootstrap)
    meta = f'{{"name": "{name}", "runtime": "provided", "memory_mb": 1769}}'
    api.post(
        "/functions",
        files={"meta": (None, meta), "zip": ("b.zip", buffer.getvalue(), "application/zip")},
    ).raise_for_status()


def _compile_c() -> bytes | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as work:
        binary = Path(work) / "bootstrap"
        subprocess.run(
            [cc, "-O2", "-o", str(binary), str(EXAMPLES / "c" / "bootstrap.c")], check=True
        )
        return binary.read_bytes()
