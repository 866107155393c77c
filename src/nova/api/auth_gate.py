"""The authentication gate: a bare ASGI middleware in front of every route.

Each request but those to a public path carries an API key (``Authorization: Bearer <key>`` or
``X-API-Key: <key>``). The gate verifies it (one HMAC and a dict lookup, nova.auth.verifier),
finds the request's rule in the permission table (nova.auth.permissions), and answers 401 (no
or a bad key), 403 (the role lacks the permission) or 404 (outside the key's scope) itself;
otherwise the key rides along in the ASGI scope (:func:`key_of`) to the routes. Lambda API
paths get their refusals in Lambda's error shape, so AWS SDKs raise their usual exceptions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from nova.api.aws_signature import aws_authorization, signed_key
from nova.api.errors import error_body
from nova.api.lambda_shapes import LambdaError, error_response
from nova.auth.jwt_tokens import JwtVerifier, looks_like_jwt
from nova.auth.permissions import PublicPaths, allowed, daemon_wide, rule_for
from nova.auth.sigv4 import InvalidSignature
from nova.auth.verifier import KeyVerifier
from nova.core.auth import (
    ApiKey,
    AuthError,
    Forbidden,
    MissingCredentials,
    OutOfScope,
    Permission,
)
from nova.core.errors import FunctionNotFound, MalformedJson, NovaError, PayloadTooLarge
from nova.core.tenancy import environment_of, short_name

SCOPE_KEY = "nova.key"
# On a request for an HTTP trigger: the check its "platform" auth setting calls (see
# :meth:`AuthGate.authorize_trigger`); absent when authentication is off.
SCOPE_TRIGGER_CHECK = "nova.trigger_check"
_BEARER = b"bearer "
_LAMBDA_PREFIX = "/2015-03-31/"
_GRANTED_MAX = 10_000

# Called for every refused request: (scope, the error); the audit log records them.
Refusal = Callable[[Scope, NovaError], None]
# Whether a request goes to an HTTP trigger (a function URL or a custom route), whose own
# auth setting decides what it needs.
TriggerMatch = Callable[[Scope], bool]
TriggerCheck = Callable[[Scope, str], Awaitable[None]]


def key_of(scope: Scope) -> ApiKey | None:
    """The verified key of a request (None when authentication is off or the path public)."""
    key: ApiKey | None = scope.get(SCOPE_KEY)
    return key


def sees(scope: Scope, function: str) -> bool:
    """Whether the request's key may see ``function`` (every key may, with auth off)."""
    key = key_of(scope)
    return key is None or key.sees(function)


def credential(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries: ``Authorization: Bearer`` first, then ``X-API-Key``."""
    for name, value in headers:
        if name == b"authorization":
            if value[:7].lower() == _BEARER:
                return value[7:].strip()
        elif name == b"x-api-key":
            return value.strip()
    return None


class AuthGate:
    def __init__(
        self,
        app: ASGIApp,
        get_verifier: Callable[[], KeyVerifier],
        public: PublicPaths,
        on_refused: Refusal | None = None,
        tokens: JwtVerifier | None = None,
        max_body_bytes: int = 6 * 1024 * 1024,
        is_trigger: TriggerMatch | None = None,
    ) -> None:
        """``get_verifier`` is called at the first request (the lifespan builds it);
        ``max_body_bytes`` bounds what a signed request's body may be (it is hashed)."""
        self._app = app
        self._get_verifier = get_verifier
        self._verifier: KeyVerifier | None = None
        self._public = public
        self._on_refused = on_refused
        self._tokens = tokens  # None: JWTs are not accepted
        self._max_body = max_body_bytes
        self._is_trigger = is_trigger
        # (key id, role, method, path) already authorized: the rules and a key's role and
        # scope never change, so a repeated request skips the rule match. Bounded.
        self._granted: set[tuple[str, str, str, str]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or self._public.is_public(scope["path"]):
            await self._app(scope, receive, send)
            return
        if self._is_trigger is not None and self._is_trigger(scope):
            scope[SCOPE_TRIGGER_CHECK] = self.authorize_trigger  # the trigger's setting decides
            await self._app(scope, receive, send)
            return
        verifier = self._verifier or self._first_verifier()
        try:
            token = credential(scope["headers"])
            known = verifier.lookup(token) if token is not None else None
            aws = None if token is not None else _aws_signed(scope)
            if known is not None:  # the usual path: no await
                key = verifier.check(known)
            elif aws is not None:
                key, receive = await signed_key(scope, receive, aws, verifier, self._max_body)
            elif token is None:
                raise MissingCredentials()
            else:
                key = await self._token_key(verifier, token)
            scope[SCOPE_KEY] = key  # known from here on: a refusal below is audited as its
            decision = (key.id, key.role, scope.get("method", "GET"), scope["path"])
            if decision not in self._granted:
                _authorize(key, decision[2], decision[3])
                if len(self._granted) >= _GRANTED_MAX:
                    self._granted.clear()
                self._granted.add(decision)
        except NovaError as exc:
            await refuse(scope, exc, send, self._on_refused)
            return
        await self._app(scope, receive, send)

    def _first_verifier(self) -> KeyVerifier:
        """The verifier, fetched at the first request (the lifespan builds it)."""
        self._verifier = self._get_verifier()
        return self._verifier

    async def _token_key(self, verifier: KeyVerifier, token: bytes) -> ApiKey:
        if self._tokens is not None and looks_like_jwt(token):
            return self._tokens.verify(token)
        return await verifier.verify(token)

    async def authorize_trigger(self, scope: Scope, function: str) -> None:
        """What an HTTP trigger with ``auth: platform`` needs: the credentials the API would
        need to invoke ``function`` (a key or token whose role may invoke and whose scope
        sees it). Raises the refusal (audited), which the trigger answers."""
        verifier = self._verifier or self._first_verifier()
        try:
            token = credential(scope["headers"])
            if token is None:
                raise MissingCredentials()
            known = verifier.lookup(token)
            key = verifier.check(known) if known is not None else None
            if key is None:
                key = await self._token_key(verifier, token)
            scope[SCOPE_KEY] = key
            if not allowed(key.role, Permission.INVOKE):
                raise Forbidden(key.role, Permission.INVOKE)
            if not key.sees(short_name(function)) or not key.acts_in(environment_of(function)):
                raise FunctionNotFound(function)
        except NovaError as exc:
            if self._on_refused is not None:
                self._on_refused(scope, exc)
            raise


def _aws_signed(scope: Scope) -> bytes | None:
    """An AWS signature, where one is accepted: on the Lambda API paths."""
    return aws_authorization(scope["headers"]) if scope["path"].startswith(_LAMBDA_PREFIX) else None


def _authorize(key: ApiKey, method: str, path: str) -> None:
    """Refuse what the key's role or scope does not allow (403, or 404 outside its scope)."""
    rule, function = rule_for(method, path)
    if not allowed(key.role, rule.permission):
        raise Forbidden(key.role, rule.permission)
    if key.environment is not None and daemon_wide(path):
        raise OutOfScope()
    if not key.unscoped:
        if function is not None:
            if not key.sees(function):
                raise FunctionNotFound(function)
        elif not rule.lists_functions:
            raise OutOfScope()


async def refuse(
    scope: Scope, error: NovaError, send: Send, on_refused: Refusal | None = None
) -> None:
    """Answer ``error`` in the shape of the path (Lambda's on the Lambda API paths), after
    reporting it to ``on_refused`` (the audit log)."""
    if on_refused is not None:
        on_refused(scope, error)
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1008})
        return
    if scope["path"].startswith(_LAMBDA_PREFIX):
        response = error_response(_as_lambda(error))
        await response(scope, _no_body, send)
        return
    body = error_body(error.code, error.message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
    ]
    if isinstance(error, AuthError):
        headers.append((b"www-authenticate", b'Bearer realm="nova"'))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _no_body() -> dict[str, object]:
    return {"type": "http.disconnect"}


def _as_lambda(error: NovaError) -> LambdaError:
    """The exception an AWS SDK raises for the same refusal."""
    if isinstance(error, MissingCredentials):
        return LambdaError("MissingAuthenticationTokenException", 403, error.message)
    if isinstance(error, InvalidSignature):
        return LambdaError("InvalidSignatureException", 403, error.message)
    if isinstance(error, PayloadTooLarge):
        return LambdaError("RequestTooLargeException", 413, error.message)
    if isinstance(error, MalformedJson):
        return LambdaError("InvalidRequestContentException", 400, error.message)
    if isinstance(error, AuthError):
        return LambdaError("UnrecognizedClientException", 403, error.message)
    if isinstance(error, Forbidden):
        return LambdaError("AccessDeniedException", 403, error.message)
    if isinstance(error, FunctionNotFound):
        return LambdaError("ResourceNotFoundException", 404, f"Function not found: {error.name}")
    return LambdaError("ResourceNotFoundException", 404, error.message)
