"""A hello function in every runtime this host lists as available answers; the others say why.

The test enumerates GET /runtimes: an available runtime without a working hello here fails,
so a runtime cannot be listed before it works.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.test_custom_runtime import BASH_BOOTSTRAP
from tests.e2e.zig_wasm_cases import ECHO_WAT, EXAMPLES

HELLO: dict[str, dict[str, str]] = {
    "python": {"handler.py": "def handler(event, context):\n    return {'hi': event['name']}\n"},
    "node": {"index.js": "exports.handler = async (event) => ({ hi: event.name });\n"},
    "provided": {"bootstrap": BASH_BOOTSTRAP},
    "ruby": {"handler.rb": "def handler(event:, context:)\n  { hi: event['name'] }\nend\n"},
    "php": {
        "handler.php": "<?php\nfunction handler($event, $context) {\n    return ['hi' => $event['name']];\n}\n"
    },
    "lua": {
        "handler.lua": "local M = {}\nfunction M.handler(event, context)\n"
        "  return { hi = event.name }\nend\nreturn M\n"
    },
    "deno": {
        "handler.ts": "export function handler(event: { name: string }) {\n"
        "  return { hi: event.name };\n}\n"
    },
    "bun": {
        "handler.ts": "export async function handler(event: { name: string }) {\n"
        "  return { hi: event.name };\n}\n"
    },
    "go": {
        "handler.go": "package main\n\nfunc Handler(event map[string]any) (map[string]any, error) {\n"
        '    return map[string]any{"hi": event["name"]}, nil\n}\n'
    },
    "rust": {
        "handler.rs": "pub fn handler(event: &str) -> Result<String, String> {\n"
        '    let name = event.split(\'"\').nth(3).unwrap_or("");\n'
        '    Ok(format!("{{\\"hi\\":\\"{}\\"}}", name))\n}\n'
    },
    "java": {
        "Handler.java": "public class Handler {\n"
        "    public static String handleRequest(String event) {\n"
        '        return "{\\"hi\\":\\"" + event.split("\\"")[3] + "\\"}";\n'
        "    }\n}\n"
    },
    "zig": {"handler.zig": (EXAMPLES / "zig" / "handler.zig").read_text()},
    "wasm": {"handler.wat": ECHO_WAT},
}
EXPECTED = {"provided": {"echo": {"name": "nova"}}, "wasm": {"name": "nova"}}


def test_hello_in_every_available_runtime(api: httpx.Client) -> None:
    runtimes = api.get("/runtimes").json()["items"]
    available = [item["name"] for item in runtimes if item["available"]]
    assert {"python", "provided"} <= set(available)
    for item in runtimes:
        if not item["available"]:
            assert item["reason"], item  # never unavailable without saying why
    for runtime in available:
        assert runtime in HELLO, f"{runtime} is listed available but has no hello test"
        name = f"hello-{runtime}"
        body = {"name": name, "runtime": runtime, "files": HELLO[runtime]}
        created = api.post("/functions", json=body)
        assert created.status_code == 201, created.text
        for _ in range(2):  # the cold start, then the warm instance
            result = api.post(f"/functions/{name}/invoke", json={"name": "nova"}).json()
            expected = EXPECTED.get(runtime, {"hi": "nova"})
            assert result["output"] == expected, (runtime, result)


# What `make system-deps` (and `make runtimes`) installs, and `make venv` for zig and wasm (their
# toolchains are PyPI wheels): each must be available where it ran, so under CI=true (where a
# skip fails) a missing install step cannot pass unnoticed.
INSTALLED_BY_MAKE = (
    "node",
    "ruby",
    "php",
    "lua",
    "deno",
    "bun",
    "go",
    "rust",
    "java",
    "zig",
    "wasm",
)


def test_every_runtime_make_installs_is_available(api: httpx.Client) -> None:
    runtimes = {item["name"]: item for item in api.get("/runtimes").json()["items"]}
    missing = {
        name: runtimes[name]["reason"]
        for name in INSTALLED_BY_MAKE
        if not runtimes[name]["available"]
    }
    if missing:
        pytest.skip(f"toolchains missing here (make runtimes installs them): {missing}")


def test_runtime_errors_in_runtime_api_languages(api: httpx.Client) -> None:
    runtimes = {item["name"]: item for item in api.get("/runtimes").json()["items"]}
    failing = {
        "ruby": {"handler.rb": "def handler(event:, context:)\n  raise ArgumentError, 'no'\nend\n"},
        "php": {
            "handler.php": "<?php\nfunction handler($e, $c) { throw new InvalidArgumentException('no'); }\n"
        },
        "lua": {"handler.lua": "return { handler = function(e, c) error('no') end }\n"},
        "deno": {"handler.ts": "export function handler() { throw new TypeError('no'); }\n"},
        "bun": {"handler.ts": "export function handler() { throw new RangeError('no'); }\n"},
    }
    types = {
        "ruby": "ArgumentError",
        "php": "InvalidArgumentException",
        "lua": "Lua.Error",
        "deno": "TypeError",
        "bun": "RangeError",
    }
    for runtime, files in failing.items():
        if not runtimes[runtime]["available"]:
            continue
        name = f"fails-{runtime}"
        api.post(
            "/functions", json={"name": name, "runtime": runtime, "files": files}
        ).raise_for_status()
        error = api.post(f"/functions/{name}/invoke", json={}).json()["error"]
        assert error["type"] == types[runtime], error
        assert error["message"] == "no"


def test_a_runtime_nova_cannot_run_yet_is_refused_with_the_reason(api: httpx.Client) -> None:
    runtimes = {item["name"]: item for item in api.get("/runtimes").json()["items"]}
    assert runtimes["swift"]["available"] is False
    assert "Debian 12, PyPI or npm" in runtimes["swift"]["reason"]
    response = api.post(
        "/functions", json={"name": "swiftfn", "runtime": "swift", "code": "print(1)"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "Runtime.Unavailable"
