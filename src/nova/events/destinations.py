"""Where an asynchronous invocation's outcome goes: another function, as a new event.

A destination is written ``function:NAME`` or ``function:NAME:QUALIFIER``. The record sent has
the shape of Lambda's destination records, so handlers written for those read it unchanged::

    {"version": "1.0", "timestamp": "…",
     "requestContext": {"requestId", "functionName", "qualifier", "condition",
                        "approximateInvokeCount"},
     "requestPayload": <the event>,
     "responseContext": {"executedVersion", "functionError"},
     "responsePayload": <the handler's output, or its error {type, message, stack}>}

``condition`` is ``Success``, ``RetriesExhausted``, ``EventAgeExceeded`` or ``FunctionMissing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from nova.core import ids
from nova.core.errors import NovaError, RequestInvalid
from nova.core.events import AsyncEvent, NewEvent
from nova.core.names import split_reference, validate_function_name
from nova.core.tenancy import environment_of, short_name

_PREFIX = "function:"


@dataclass(frozen=True, slots=True)
class Destination:
    function: str
    qualifier: str  # "" for $LATEST

    @classmethod
    def parse(cls, field: str, text: str) -> Destination | None:
        """The destination ``text`` names, None for ""; RequestInvalid naming ``field``."""
        if not text:
            return None
        if not text.startswith(_PREFIX):
            raise RequestInvalid(
                f"{field}: {text[:80]!r} must be 'function:NAME' or 'function:NAME:QUALIFIER' "
                "(or empty for none)"
            )
        try:
            name, qualifier = split_reference(text.removeprefix(_PREFIX))
            validate_function_name(name)
        except NovaError as exc:
            raise RequestInvalid(f"{field}: {exc.message}") from None
        return cls(name, qualifier or "")

    def event(
        self, source: AsyncEvent, condition: str, response: dict[str, object] | None
    ) -> NewEvent:
        """The event that carries ``source``'s outcome to this destination."""
        response = response or {}
        error = response.get("error")
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": {
                "requestId": source.id,
                "functionName": short_name(source.function),
                "qualifier": source.qualifier or "$LATEST",
                "condition": condition,
                "approximateInvokeCount": source.attempts,
            },
            "requestPayload": orjson.Fragment(source.payload),
            "responseContext": {
                "executedVersion": response.get("version"),
                "functionError": error.get("type") if isinstance(error, dict) else None,
            },
            "responsePayload": error if error is not None else response.get("output"),
        }
        return NewEvent(
            id=ids.request_id(),
            # A destination names a function of the source's own environment.
            function=environment_of(source.function).full_name(self.function),
            qualifier=self.qualifier,
            payload=orjson.dumps(record),
            source=f"destination:{source.id}",
        )
