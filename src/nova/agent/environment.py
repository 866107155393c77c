"""The environment a function process sees (MISSION F4), built once per Init.

Nothing of the agent's own environment leaks beyond PATH and LANG; HOME and TMPDIR point at the
instance's scratch directory. The per-invocation variables (request id, trace parent) are the
only part that changes per call, so they are kept apart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from nova.agent.spec import InitSpec

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
REQUEST_ID = "NOVA_REQUEST_ID"
TRACE_PARENT = "NOVA_TRACE_PARENT"
AMZN_TRACE_ID = "_X_AMZN_TRACE_ID"  # what Lambda-style clients and the X-Ray SDK read


def nova_variables(spec: InitSpec) -> dict[str, str]:
    """The NOVA_* variables that are fixed for the life of an instance."""
    return {
        "NOVA_FUNCTION_NAME": spec.function_name,
        "NOVA_FUNCTION_VERSION": spec.function_version,
        "NOVA_MEMORY_LIMIT_MB": str(spec.memory_mb),
        "NOVA_TIMEOUT_S": f"{spec.timeout_s:g}",
        "NOVA_RUNTIME": spec.runtime,
        "NOVA_CODE_DIR": spec.code_dir,
        "NOVA_MODE": spec.mode,
    }


def function_environment(spec: InitSpec, agent_env: Mapping[str, str]) -> dict[str, str]:
    env = {
        "PATH": agent_env.get("PATH", DEFAULT_PATH),
        "LANG": agent_env.get("LANG", "C.UTF-8"),
        "HOME": spec.tmp_dir,
        "TMPDIR": spec.tmp_dir,
    }
    env.update(spec.env)
    for search_path in ("PYTHONPATH", "NODE_PATH"):
        user_value = spec.env.get(search_path)
        env[search_path] = spec.code_dir + (os.pathsep + user_value if user_value else "")
    env.update(nova_variables(spec))  # last: user env cannot spoof the platform's variables
    return env


def invocation_variables(request_id: object, trace_parent: str | None) -> dict[str, str]:
    variables = {REQUEST_ID: "" if request_id is None else str(request_id)}
    if trace_parent is not None:
        variables[TRACE_PARENT] = trace_parent
        amzn = amzn_trace_id(trace_parent)
        if amzn is not None:
            variables[AMZN_TRACE_ID] = amzn
    return variables


def amzn_trace_id(trace_parent: str) -> str | None:
    """A W3C traceparent (``00-<trace id>-<parent span id>-<flags>``) in the X-Ray header form
    Lambda uses (``Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>``): the same trace
    and parent for clients that only know that one; None when it is no traceparent.

    bootstraps/python_bootstrap.py and node_bootstrap.js, which cannot import this, repeat it."""
    parts = trace_parent.split("-")
    if [len(part) for part in parts] != [2, 32, 16, 2]:
        return None
    try:
        sampled = int(parts[3], 16) & 1
        int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    trace_id = parts[1]
    return f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={parts[2]};Sampled={sampled}"


def invocation_variables_json(request_id: object, trace_parent: str | None) -> bytes:
    """The same variables as a JSON object, for the worker request line (hot path)."""
    return json.dumps(
        invocation_variables(request_id, trace_parent), separators=(",", ":"), ensure_ascii=False
    ).encode()
