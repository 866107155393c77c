"""The only module that speaks HTTP: a small synchronous client of the Nova API.

Transport failures and non-2xx answers become :mod:`nova.cli.errors` here, so commands see
either a parsed 2xx body or a :class:`~nova.cli.errors.CliError` they can let propagate.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import httpx

from nova.cli.errors import ApiError, BadResponse, TimedOut, Unreachable

AUTH_HINT = (
    "the CLI sends --api-key (NOVA_API_KEY), else the admin key in <data dir>/admin-key "
    "(--data-dir, NOVA_DATA_DIR; default .nova-data)"
)
PAGE_SIZE = 100
_MAX_PAGES = 10_000  # a cursor that never ends is a server bug, not a reason to hang


def function_path(name: str, *rest: str) -> str:
    """``/functions/{name}[/rest...]`` with the name escaped (``:`` kept for qualifiers)."""
    parts = [quote(name, safe=":"), *(quote(part, safe="") for part in rest)]
    return "/functions/" + "/".join(parts)


class SendOptions(TypedDict, total=False):
    """:meth:`ApiClient.send`'s keyword options, for :meth:`ApiClient.call`."""

    params: Mapping[str, str | int] | None
    json_body: Any
    content: bytes | None
    headers: Mapping[str, str] | None
    data: Mapping[str, str] | None
    files: Mapping[str, tuple[str, bytes, str]] | None
    timeout: httpx.Timeout | None


class ApiClient:
    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float,
        transport: httpx.BaseTransport | None = None,
        debug: bool = False,
        api_key: str | None = None,
        environment: str | None = None,
    ) -> None:
        """``environment``: org/project/env every request acts in (X-Nova-Environment)."""
        self.endpoint = endpoint
        hooks: dict[str, list[Any]] = (
            {"request": [_trace_request], "response": [_trace_response]} if debug else {}
        )
        self._http = httpx.Client(
            base_url=endpoint,
            timeout=timeout_s,
            transport=transport,
            headers={
                "User-Agent": "nova-cli",
                "Accept": "application/json",
                **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
                **({"X-Nova-Environment": environment} if environment else {}),
            },
            event_hooks=hooks,
        )

    def close(self) -> None:
        self._http.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        check: bool = True,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send one request; with ``check`` a non-2xx answer raises :class:`ApiError`.

        ``timeout`` replaces the client's own for this request (``nova invoke`` waits longer).
        """
        if json_body is not None:
            content = json.dumps(json_body).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                content=content,
                headers=headers,
                data=data,
                files=files,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Unreachable(self.endpoint, _reason(exc)) from exc
        except httpx.TimeoutException as exc:
            raise TimedOut(
                f"no answer from {self.endpoint} in time ({_reason(exc)})",
                hint="raise the limit with `nova --timeout SECONDS ...`",
            ) from exc
        except httpx.TransportError as exc:
            raise Unreachable(self.endpoint, _reason(exc)) from exc
        if check and not response.is_success:
            raise api_error(response)
        return response

    def events(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        opened: Callable[[], None] | None = None,
    ) -> Iterator[str]:
        """The ``data`` of each Server-Sent Event ``path`` sends, until the server ends the
        stream (no read timeout: a quiet stream is not a dead one); ``opened()`` once the
        first line arrives."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        try:
            with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    raise api_error(response)
                for line in response.iter_lines():
                    if opened is not None:
                        opened()
                        opened = None
                    if line.startswith("data:"):
                        yield line[5:].strip()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Unreachable(self.endpoint, _reason(exc)) from exc
        except httpx.TransportError as exc:
            raise Unreachable(self.endpoint, _reason(exc)) from exc

    def call(self, method: str, path: str, **options: Unpack[SendOptions]) -> Any:
        """:meth:`send` and return the decoded JSON body (``None`` for an empty body). The
        options are typed (not ``**kwargs: Any``) so a misspelt one is a type error, not a
        crash of the command."""
        return decode(self.send(method, path, **options))

    def collect(self, path: str, params: Mapping[str, str | int] | None = None) -> list[Any]:
        """Every item of a ``{"items", "next"}`` collection, following ``next`` cursors."""
        items: list[Any] = []
        query: dict[str, str | int] = {**(params or {}), "limit": PAGE_SIZE}
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = self.call("GET", path, params=query)
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise BadResponse(f"GET {path} did not return an {{items, next}} list")
            items.extend(page["items"])
            cursor = page.get("next")
            if not cursor or str(cursor) in seen:
                break
            seen.add(str(cursor))
            query["cursor"] = str(cursor)
        return items


def decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise BadResponse(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code} with a body that is not JSON"
        ) from exc


def api_error(response: httpx.Response) -> ApiError:
    """Translate a non-2xx answer; tolerate bodies that are not the documented error shape."""
    code: str | None = None
    message = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    try:
        body = response.json()
    except ValueError:
        body = None
        snippet = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        if snippet:
            message = f"{message}: {snippet}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error["code"]) if error.get("code") else None
        message = str(error.get("message") or code or message)
    retry_after = response.headers.get("Retry-After")
    hint = f"retry after {retry_after}s" if response.status_code == 429 and retry_after else None
    if response.status_code == 401:
        hint = AUTH_HINT
    return ApiError(code, message, response.status_code, retry_after=retry_after, hint=hint)


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _trace_request(request: httpx.Request) -> None:
    request.extensions["nova_started"] = time.perf_counter()
    sys.stderr.write(f"> {request.method} {request.url}\n")


def _trace_response(response: httpx.Response) -> None:
    started = response.request.extensions.get("nova_started")
    took = f" in {(time.perf_counter() - started) * 1000:.1f} ms" if started else ""
    sys.stderr.write(f"< {response.status_code} {response.reason_phrase}{took}\n")
