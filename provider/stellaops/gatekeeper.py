"""``POST /gatekeeper/v1/verify``: Gatekeeper's external-data protocol (DESIGN.md §2).

Request:  {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest",
           "request": {"keys": ["<image reference>", …]}}
Response: {"apiVersion": …, "kind": "ProviderResponse", "response": {"idempotent": true,
           "items": [{"key", "value", "error"}], "systemError": ""}}

A key is exactly one image reference (docs/gatekeeper-protocol.md). Definitive outcomes are
items (a verdict ``value``, or ``error`` = "REASON: detail" when the key can never succeed);
transient ones omit the key's item and are named in ``systemError`` so Gatekeeper, which caches
every returned item for its TTL, retries them on the next admission. A malformed request gets
HTTP 400 with the problem in ``systemError`` (Gatekeeper reads the body whatever the status).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from . import metrics

bp = Blueprint("gatekeeper", __name__)
log = logging.getLogger("stellaops.gatekeeper")

API_VERSION = "externaldata.gatekeeper.sh/v1beta1"
ACCEPTED_API_VERSIONS = (API_VERSION, "externaldata.gatekeeper.sh/v1alpha1")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def provider_response(items: list[bytes], system_error: str = "", *, status: int = 200) -> Response:
    """The ProviderResponse, from items already encoded (cached verdicts are spliced as bytes)."""
    body = (
        b'{"apiVersion":"' + API_VERSION.encode() + b'","kind":"ProviderResponse","response":{"idempotent":true,"items":['
        + b",".join(items)
        + b'],"systemError":'
        + _dumps(system_error)
        + b"}}"
    )
    return Response(body, status=status, mimetype="application/json")


def _item(key: str, value: Any = None, error: str = "") -> bytes:
    from .engine import CachedVerdict

    key_json = _dumps(key)
    if isinstance(value, CachedVerdict):
        encoded = value.value_bytes(key_json)
    elif value is not None:
        encoded = _dumps(value.to_json())
    else:
        encoded = b"null"
    return b'{"key":' + key_json + b',"value":' + encoded + b',"error":' + _dumps(error) + b"}"


def _bad_request(message: str) -> Response:
    log.info("rejected provider request", extra={"request_id": g.get("request_id"), "problem": message})
    return provider_response([], f"bad ProviderRequest: {message}", status=400)


def _too_large(length: int | None, limit: int) -> Response:
    size = f"{length} bytes" if length is not None else "more bytes"
    return provider_response([], f"bad ProviderRequest: body of {size} is over server.maxBodyBytes ({limit})", status=413)


def too_large_response() -> Response:
    """The ProviderResponse for a body refused before it reached the view (app-wide limit)."""
    config = current_app.config["STELLAOPS_CONFIG"]
    return _too_large(request.content_length, config.server.max_body_bytes)


def parse_provider_request(body: bytes, *, max_keys: int) -> list[Any]:
    """Validate a ProviderRequest; returns its keys (strings and non-strings, checked per key).
    Raises ValueError with a precise message when the request as a whole is malformed."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"body must be a JSON object, got {type(doc).__name__}")
    if doc.get("kind") != "ProviderRequest":
        raise ValueError(f"kind is {doc.get('kind')!r}, expected 'ProviderRequest'")
    if doc.get("apiVersion") not in ACCEPTED_API_VERSIONS:
        raise ValueError(f"apiVersion is {doc.get('apiVersion')!r}, expected {API_VERSION!r}")
    req = doc.get("request")
    if not isinstance(req, dict):
        raise ValueError("'request' must be an object with 'keys'")
    keys = req.get("keys")
    if keys is None:
        keys = []
    if not isinstance(keys, list):
        raise ValueError(f"request.keys must be a list of strings, got {type(keys).__name__}")
    if len(keys) > max_keys:
        raise ValueError(f"{len(keys)} keys is more than the limit of {max_keys} (server.maxKeys)")
    return keys


@bp.post("/gatekeeper/v1/verify")
def verify() -> Response:
    started = time.monotonic()
    config = current_app.config["STELLAOPS_CONFIG"]
    engine = current_app.extensions["stellaops.engine"]
    deadline = started + config.server.deadline_seconds
    limit = config.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _too_large(request.content_length, limit)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _too_large(None, limit)
    try:
        keys = parse_provider_request(body, max_keys=config.server.max_keys)
    except ValueError as exc:
        return _bad_request(str(exc))
    metrics.KEYS_PER_REQUEST.observe(len(keys))

    items: list[bytes] = []
    valid: list[str] = []
    per_key_errors: dict[Any, str] = {}
    for key in keys:
        if not isinstance(key, str):
            # Gatekeeper always sends strings; answer with an error item under the key's JSON form
            per_key_errors[json.dumps(key)] = f"REQUEST_INVALID: key must be a string, got {type(key).__name__}"
        elif len(key) > config.server.max_key_length:
            per_key_errors[key] = (
                f"REQUEST_INVALID: key is {len(key)} characters, more than server.maxKeyLength ({config.server.max_key_length})"
            )
        else:
            valid.append(key)
    result = engine.verify_batch(valid, deadline=deadline)
    transient: list[str] = []
    seen: set[str] = set()
    for key in keys:
        k = key if isinstance(key, str) else json.dumps(key)
        if k in seen:
            continue
        seen.add(k)
        if k in per_key_errors:
            items.append(_item(k, error=per_key_errors[k]))
        elif k in result.verdicts:
            items.append(_item(k, result.verdicts[k]))
        elif k in result.errors:
            err = result.errors[k]
            if err.transient:
                transient.append(f"{k}: {err}")
            else:
                items.append(_item(k, error=str(err)))
    system_error = ""
    if transient:
        system_error = "transient failure, retry: " + "; ".join(transient)
    log.info(
        "provider request",
        extra={
            "request_id": g.get("request_id"),
            "keys": len(keys),
            "items": len(items),
            "transient": len(transient),
            "duration_ms": round((time.monotonic() - started) * 1000, 2),
        },
    )
    return provider_response(items, system_error)
