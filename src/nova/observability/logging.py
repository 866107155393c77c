"""Logging is configured here and only from entry points (daemon, CLI), never on import."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from nova.observability.log_context import CURRENT


class JsonFormatter(logging.Formatter):
    """One JSON object a line; lines written during an invocation carry its request id,
    function, version and trace id (``log_context``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        invocation = CURRENT.get()
        if invocation is not None:
            entry["request_id"] = invocation.request_id
            entry["function"] = invocation.function
            if invocation.version is not None:
                entry["version"] = invocation.version
            if invocation.trace_id is not None:
                entry["trace_id"] = invocation.trace_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own loggers propagate to ours; its access log is off (the invocation log is ours).
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
