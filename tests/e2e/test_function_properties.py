"""Properties of create, update and code upload, checked against the real daemon.

Hypothesis builds requests from valid and invalid values of every field (names, handlers,
timeouts, memory, env with NUL and unicode, replicas, concurrency, backends, file maps with
conflicting, long and odd paths, zips that are broken or say too much) and checks, for each:

- no create or update ever answers 5xx; every 4xx is the JSON error body;
- every 2xx leaves a function that invokes with a 200 (a handler error is a result, not a 5xx);
- every 4xx leaves the store (GET /functions, GET /functions/{name}: code_hash, revision, ...)
  and the code on disk (<data_dir>/code) exactly as they were.

The process backend runs the functions, plus container and gVisor where this host has them
(functions ask for them through `backend`). Examples are derandomised: CI runs the same ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from tests.e2e.daemon_process import DaemonProcess
from tests.zips import with_utf8_flag_on_invalid_name, zip_bytes

NAME = "prop"
MAX_FILES = 8
MAX_UNPACKED_BYTES = 128 * 1024
MAX_UPLOAD_BYTES = 256 * 1024
ERROR_CODE = re.compile(r"^[A-Z][A-Za-z]+\.[A-Za-z.]+$")
OK = "{'ok': True}"


@dataclass(frozen=True)
class Handler:
    runtime: str
    handler: str
    module_file: str
    source: str


HANDLERS = [
    Handler("python", "handler.handler", "handler.py", f"def handler(e, c):\n    return {OK}\n"),
    Handler("python", "pkg.app.main", "pkg/app.py", f"def main(e, c):\n    return {OK}\n"),
    Handler("python", "pkg/app.main", "pkg/app.py", f"def main(e, c):\n    return {OK}\n"),
    Handler("node", "index.handler", "index.js", "exports.handler = async () => ({ok: true});\n"),
    Handler("node", "lib/app.main", "lib/app.js", "exports.main = async () => ({ok: true});\n"),
]
BAD_HANDLERS = ["", "handler", "a b.handler", "hé.handler", "../x.handler", "x" * 300 + ".h", ".h"]
ODD_PATHS = [
    "n" * 256,
    "é" * 128,
    "/".join(["d" * 200] * 6),
    "a//b",
    "a/",
    "./a",
    "../a",
    "/abs",
    "a\\b",
    "",
]
GOOD_PATHS = ["a", "a/b", "a/b/c.py", "n" * 255, "...", "A.py", "a.py", "bootstrap", "nm/x/i.js"]


contents = st.text(max_size=20)
paths = st.sampled_from(GOOD_PATHS) | st.from_regex(r"\A[a-z]{1,3}(/[a-z]{1,3}){0,2}\.py\Z")
env_keys = st.sampled_from(["A", "_", "GREETING", "K" * 128]) | st.from_regex(
    r"\A[A-Z_][A-Z0-9_]{0,6}\Z"
)
env_values = st.text(max_size=16).filter(lambda text: "\x00" not in text) | st.just("ü" * 100)
# Each field's values: those within bounds, and those just past them.
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "memory_mb": (st.sampled_from([64, 128, 256]), st.sampled_from([-1, 0, 63, 10241])),
    "timeout_s": (st.sampled_from([0.1, 0.5, 30, 900]), st.sampled_from([-1, 0, 0.0005, 900.5])),
    "env": (
        st.dictionaries(env_keys, env_values, max_size=3),
        st.sampled_from(["a\x00b", "x" * 70_000]).map(lambda value: {"A": value})
        | st.sampled_from(["NOVA_X", "AWS_LAMBDA_Y", "1A", "A=B", "", "é", "K" * 129]).map(
            lambda key: {key: "1"}
        ),
    ),
    "mode": (st.sampled_from(["persistent", "process"]), st.just("forever")),
    "min_replicas": (st.sampled_from([0, 1]), st.sampled_from([-1, 2000])),
    "max_replicas": (st.sampled_from([1, 3, 1000]), st.sampled_from([0, 1001])),
    "instance_concurrency": (st.sampled_from([1, 2, 4, 8]), st.sampled_from([0, 9, 1000])),
    "backend": (
        st.sampled_from(["container", "gvisor", "process", "auto", None]),
        st.sampled_from(["microvm", "bogus", ""]),
    ),
    "network": (st.booleans(), st.nothing()),
    "description": (st.text(max_size=20), st.sampled_from(["x" * 1025, "a\x00b"])),
}
# What one example may get wrong, one at a time; None (half the examples): nothing on purpose,
# though values that are each within bounds may still clash (gvisor with network).
ASPECTS = ("name", "handler", "runtime", "code", *(key for key in FIELDS if key != "network"))
broken_aspects = st.sampled_from([None] * len(ASPECTS) + list(ASPECTS))


@st.composite
def config_fields(draw: st.DrawFn, broken: str | None) -> dict[str, Any]:
    """Some fields within bounds, and the ``broken`` one (if it is a field) past its bound."""
    fields: dict[str, Any] = draw(
        st.fixed_dictionaries({}, optional={key: valid for key, (valid, _) in FIELDS.items()})
    )
    if broken in FIELDS:
        fields[broken] = draw(FIELDS[broken][1])
    return {key: value for key, value in fields.items() if value is not None}


@dataclass
class Call:
    """One create or update request, and whether the function exists before it."""

    method: str
    path: str
    existing: bool
    json_body: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, api: httpx.Client) -> httpx.Response:
        if self.meta is not None:
            files = {
                "meta": (None, json.dumps(self.meta)),
                "zip": ("code.zip", self.content or b"", "application/zip"),
            }
            return api.request(self.method, self.path, files=files)
        if self.json_body is not None:
            return api.request(self.method, self.path, json=self.json_body)
        return api.request(self.method, self.path, content=self.content, headers=self.headers)


@st.composite
def extra_files(draw: st.DrawFn, broken: bool) -> dict[str, str]:
    if not broken:
        return draw(st.dictionaries(paths, contents, max_size=3))
    return draw(
        st.sampled_from(ODD_PATHS).map(lambda path: {path: ""})
        | st.just({"big.txt": "x" * (MAX_UNPACKED_BYTES + 1)})
        | st.just({f"f{i}.py": "" for i in range(MAX_FILES + 1)})
        | st.just({"a": "file", "a/b": "needs a directory"})
    )


@st.composite
def archives(draw: st.DrawFn, handler: Handler, broken: bool) -> bytes:
    files = {**draw(extra_files(broken)), handler.module_file: handler.source}
    data = zip_bytes(files)
    damage = draw(st.sampled_from(["entries", "twice", "truncated", "garbage", "utf8", "empty"]))
    if not broken or damage == "entries":
        return data
    if damage == "twice":
        return zip_bytes([*files.items(), (handler.module_file, handler.source)])
    if damage == "truncated":
        return data[: len(data) // 2]
    if damage == "garbage":
        return draw(st.binary(min_size=1, max_size=64))
    if damage == "utf8":
        return with_utf8_flag_on_invalid_name(data, handler.module_file.encode())
    return zip_bytes({})


@st.composite
def code_fields(draw: st.DrawFn, handler: Handler, broken: bool) -> dict[str, Any]:
    """The code of a JSON body: one valid source, or (``broken``) one a rule refuses."""
    if not broken:
        if draw(st.booleans()):
            return {"code": handler.source}
        return {"files": {**draw(extra_files(False)), handler.module_file: handler.source}}
    wrong = draw(st.sampled_from(["files", "no-handler", "path", "two", "none"]))
    if wrong == "files":
        return {"files": {**draw(extra_files(True)), handler.module_file: handler.source}}
    if wrong == "no-handler":
        return {"files": draw(extra_files(False)) or {"other.txt": ""}}
    if wrong == "path":
        return {"code_path": draw(st.sampled_from(["/etc", "relative", "/nonexistent"]))}
    if wrong == "two":
        return {"code": handler.source, "files": {handler.module_file: handler.source}}
    return {}


@st.composite
def handler_fields(draw: st.DrawFn, handler: Handler, broken: str | None) -> dict[str, Any]:
    fields = {"handler": handler.handler, "runtime": handler.runtime}
    if broken == "handler":
        fields["handler"] = draw(st.sampled_from(BAD_HANDLERS) | st.text(max_size=10))
    if broken == "runtime":
        fields["runtime"] = draw(st.sampled_from(["cobol", "", "Python"]))
    return fields


@st.composite
def calls(draw: st.DrawFn) -> Call:
    broken = draw(broken_aspects)
    handler = draw(st.sampled_from(HANDLERS))
    kind = draw(st.sampled_from(["create", "create-zip", "patch", "put"]))
    fields = draw(config_fields(broken))
    if kind.startswith("create"):
        name = draw(st.sampled_from(["Prop", "-x", "a" * 64, ""])) if broken == "name" else NAME
        existing = draw(st.integers(0, 5)) == 5  # then a 409
        meta = {"name": name, **fields, **draw(handler_fields(handler, broken))}
        if kind == "create-zip":
            archive = draw(archives(handler, broken == "code"))
            return Call("POST", "/functions", existing, meta=meta, content=archive)
        body = meta | draw(code_fields(handler, broken == "code"))
        return Call("POST", "/functions", existing, json_body=body)
    if kind == "patch":
        # Without new code the handler stays the baseline's: a PATCH may change either.
        if broken == "code" or draw(st.booleans()):
            fields |= draw(handler_fields(handler, broken))
            fields |= draw(code_fields(handler, broken == "code"))
        elif broken in ("handler", "runtime"):
            fields |= draw(handler_fields(HANDLERS[0], broken))
        if broken == "name":
            fields["name"] = "other"
        return Call("PATCH", f"/functions/{NAME}", True, json_body=fields)
    # A PUT has no fields: whatever an example would break, a PUT breaks its archive instead
    # (or, for a bad name, its content type).
    content_type = "text/plain" if broken == "name" else "application/zip"
    return Call(
        "PUT",
        f"/functions/{NAME}/code",
        True,
        content=draw(archives(HANDLERS[0], broken not in (None, "name"))),
        headers={"content-type": content_type},
    )


@pytest.fixture(scope="module")
def property_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    env = {
        "NOVA_CODE__MAX_FILES": str(MAX_FILES),
        "NOVA_CODE__MAX_UNPACKED_BYTES": str(MAX_UNPACKED_BYTES),
        "NOVA_CODE__MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        # Refused by config, whatever the host has: a microVM's image build and boot are
        # minutes under TCG, and tests/microvm runs it end to end.
        "NOVA_SANDBOX__DISABLED_BACKENDS": '["microvm"]',
    }
    daemon = DaemonProcess(Path(tmp_path_factory.mktemp("properties")) / "data", env=env)
    yield daemon.start()
    daemon.stop()


def _state(api: httpx.Client, code_dir: Path) -> tuple[Any, Any, dict[str, str]]:
    """What a refused request must not change: the listing, the record and the code on disk."""
    listing = api.get("/functions").json()
    record = api.get(f"/functions/{NAME}").json()
    tree = {
        str(path.relative_to(code_dir)): (
            f"{path.stat().st_mode:o}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
            if path.is_file()
            else "directory"
        )
        for path in sorted(code_dir.rglob("*"))
    }
    return listing, record, tree


def _check_error(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert ERROR_CODE.match(error["code"]), error
        assert error["message"]


def _create(**fields: Any) -> Call:
    body = {"name": NAME, "runtime": "python", "code": HANDLERS[0].source, **fields}
    return Call("POST", "/functions", False, json_body={k: v for k, v in body.items() if v})


def _put(files: dict[str, str]) -> Call:
    archive = zip_bytes({HANDLERS[0].module_file: HANDLERS[0].source, **files})
    headers = {"content-type": "application/zip"}
    return Call("PUT", f"/functions/{NAME}/code", True, content=archive, headers=headers)


# What a probe of the API found, run first in every run (hypothesis may not draw them).
KNOWN = [
    _create(backend="microvm"),
    _create(backend="gvisor", network=True),
    _create(files={"handler.py": HANDLERS[0].source, "a": "", "a/b": ""}, code=None),
    _put({"x" * 300: ""}),
    _create(timeout_s=0.0005),
    _create(env={"A": "x\x00y"}),
    _create(handler="a b.handler"),
    _create(handler="hé.handler"),
    _create(runtime="node", code=HANDLERS[3].source, instance_concurrency=8, backend="container"),
]


def _with_known_examples(test: Any) -> Any:
    for call in KNOWN:
        test = example(call=call)(test)
    return test


@_with_known_examples
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(call=calls())
def test_accepted_requests_invoke_and_refused_ones_change_nothing(
    property_daemon: DaemonProcess, call: Call
) -> None:
    code_dir = property_daemon.data_dir / "code"
    with property_daemon.client() as api:
        try:
            if call.existing:
                baseline = {"name": NAME, "runtime": "python", "code": HANDLERS[0].source}
                api.post("/functions", json=baseline).raise_for_status()
            before = _state(api, code_dir)
            response = call.send(api)
            note(f"{call.method} {call.path} -> {response.status_code} {response.text[:300]}")
            event(f"{call.method} {response.status_code // 100}xx")
            _check_error(response)
            if response.status_code >= 400:
                assert _state(api, code_dir) == before
                return
            name = response.json()["name"]
            assert api.get(f"/functions/{name}").json() == response.json()
            result = api.post(f"/functions/{name}/invoke", json={"k": 1})
            note(f"invoke -> {result.status_code} {result.text[:300]}")
            assert result.status_code == 200, result.text
            assert set(result.json()) >= {"request_id", "output", "error", "duration_ms"}
        finally:
            for item in api.get("/functions").json()["items"]:
                api.delete(f"/functions/{item['name']}").raise_for_status()
