"""Structured JSON logs with a request id. Never log secrets, tokens or whole envelopes:
callers pass only the fields listed in docs/operations.md."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("stellaops")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def new_request_id(incoming: str | None) -> str:
    """Use the caller's X-Request-Id when it is sane, else a fresh one."""
    if incoming and len(incoming) <= 128 and incoming.isascii() and incoming.replace("-", "").replace("_", "").isalnum():
        return incoming
    return uuid.uuid4().hex
