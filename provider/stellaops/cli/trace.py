"""``-d``/``--debug``: a trace of every HTTP request on stderr, like cosign's ``-d``.

Every request the CLI makes (registries, and TUF mirrors, Rekor, Fulcio, timestamp authorities)
goes through urllib3, which logs one DEBUG record per response on ``urllib3.connectionpool``
(``scheme://host:port "METHOD /path?query HTTP/1.1" status length``) and one per new
connection. This handler turns those records into one line each::

    stella: GET http://127.0.0.1:5000/v2/app/manifests/v1 -> 200
    stella: connecting to https://registry.example.com:443

Never printed: headers (so no ``Authorization``), bodies (so no token-endpoint secrets), and
query values other than the harmless ones in :data:`SAFE_QUERY_KEYS` (a blob redirect's
pre-signed URL carries its credential in the query; it is shown as ``X-Amz-Signature=…``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

# Query parameters the registry API uses that carry no secret.
SAFE_QUERY_KEYS = frozenset({"n", "last", "digest", "mount", "from", "scope", "service", "artifacttype", "account", "tag"})
REDACTED = "…"
_LOGGER = "urllib3.connectionpool"


def redact_url(url: str) -> str:
    """``url`` with userinfo dropped and every query value not known to be harmless replaced by
    ``…`` (keys kept, so the trace still says what was asked)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = ""
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = "?" + "&".join(
            f"{quote(k, safe='')}={quote(v, safe=':/,') if k.lower() in SAFE_QUERY_KEYS else REDACTED}" for k, v in pairs
        )
    prefix = f"{parts.scheme}://{netloc}" if parts.scheme else ""
    return f"{prefix}{parts.path}{query}"


class _TraceHandler(logging.Handler):
    def __init__(self, stream: Any) -> None:
        super().__init__(logging.DEBUG)
        self._stream = stream  # None: whatever sys.stderr is when a line is written

    @property
    def stream(self) -> Any:
        return self._stream if self._stream is not None else sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = format_record(record)
            if line:
                self.stream.write(f"stella: {line}\n")
                self.stream.flush()
        except Exception:  # noqa: BLE001 - a trace line must never break the command
            self.handleError(record)


def format_record(record: logging.LogRecord) -> str:
    """One trace line for a urllib3 record, or "" for records not worth a line."""
    args = record.args if isinstance(record.args, tuple) else ()
    msg = str(record.msg)
    if msg.startswith('%s://%s:%s "%s %s %s" %s') and len(args) >= 7:
        scheme, host, port, method, url, _version, status = args[:7]
        return f"{method} {redact_url(f'{scheme}://{host}:{port}{url}')} -> {status}"
    if msg.startswith("Starting new") and len(args) >= 3:  # "Starting new HTTP connection (%d): %s:%s"
        scheme = "https" if "HTTPS" in msg else "http"
        return f"connecting to {scheme}://{args[1]}:{args[2]}"
    if msg.startswith("Resetting dropped connection") and args:
        return f"reconnecting to {args[0]}"
    return ""


_installed: list[logging.Handler] = []


def enable_http_trace(stream: Any = None) -> None:
    """Print every HTTP request on ``stream`` (default stderr) from now on (idempotent)."""
    if _installed:
        return
    handler = _TraceHandler(stream)
    logger = logging.getLogger(_LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    _installed.append(handler)


def disable_http_trace() -> None:
    """Undo :func:`enable_http_trace` (tests run several commands in one process)."""
    logger = logging.getLogger(_LOGGER)
    while _installed:
        logger.removeHandler(_installed.pop())
    logger.setLevel(logging.NOTSET)
