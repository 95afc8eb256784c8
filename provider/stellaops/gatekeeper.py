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

Two bounds live here (issue 16 items 5 and 6):

- **transient memory** (:class:`TransientMemory`, ``server.transientMemorySeconds``): Gatekeeper
  calls the provider once per ConstraintTemplate that asks about an image, and never caches a
  ``systemError``. Behind a registry that stalls, each call used to wait out the whole deadline,
  so a few stacked templates outlived the admission webhook. A key whose verification ended
  transient within the last few seconds is now answered at once with the same ``systemError``,
  without the engine: a stall costs one deadline per admission, not one per template.
- **response cap** (``limits.responseBytes``): items are added while the answer stays within
  the cap. An item that does not fit goes to ``systemError`` (see :func:`_assemble`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from . import metrics

bp = Blueprint("gatekeeper", __name__)
log = logging.getLogger("stellaops.gatekeeper")

API_VERSION = "externaldata.gatekeeper.sh/v1beta1"
ACCEPTED_API_VERSIONS = (API_VERSION, "externaldata.gatekeeper.sh/v1alpha1")


# a systemError names every transient key with its reason; past this many bytes the rest are
# counted, not listed (the text is in every denial message of every template)
SYSTEM_ERROR_BYTES = 64 * 1024
# keys the transient memory holds at most (per process); each entry is a key (at most
# server.maxKeyLength characters) and its error text (cut to TRANSIENT_TEXT_BYTES)
TRANSIENT_MEMORY_KEYS = 4096
TRANSIENT_TEXT_BYTES = 1024


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class TransientMemory:
    """Keys whose verification ended transient (``systemError``) in the last ``seconds``,
    with the error text they got: answered again at once, without the engine.

    Only transient outcomes are remembered (definitive ones are cached by Gatekeeper itself,
    per DESIGN.md §2); the answer is the same ``systemError``, so Gatekeeper's semantics do not
    change: nothing is cached, and the next admission after ``seconds`` verifies again.
    Per process (each gunicorn worker has its own), bounded to ``max_keys`` entries (the
    oldest go first), safe to use from every request thread.
    """

    def __init__(self, seconds: float, *, max_keys: int = TRANSIENT_MEMORY_KEYS, clock: Any = time.monotonic) -> None:
        self.seconds = float(seconds)
        self.max_keys = int(max_keys)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.seconds > 0 and self.max_keys > 0

    def recall(self, key: str) -> str | None:
        """The error text ``key`` ended with, if that was less than ``seconds`` ago."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if hit[0] <= now:
                del self._entries[key]
                return None
            return hit[1]

    def remember(self, key: str, text: str) -> None:
        if not self.enabled:
            return
        text = text if len(text) <= TRANSIENT_TEXT_BYTES else text[:TRANSIENT_TEXT_BYTES] + "…"
        now = self._clock()
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (now + self.seconds, text)  # insertion order = expiry order
            while self._entries:
                oldest_key, (expires, _) = next(iter(self._entries.items()))
                if expires > now and len(self._entries) <= self.max_keys:
                    break
                del self._entries[oldest_key]

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


_memory_lock = threading.Lock()


def transient_memory(app: Any, seconds: float) -> TransientMemory:
    """The app's :class:`TransientMemory` (one per process: created on first use, after fork)."""
    memory = app.extensions.get("stellaops.transient_memory")
    if memory is None or memory.seconds != float(seconds):
        with _memory_lock:
            memory = app.extensions.get("stellaops.transient_memory")
            if memory is None or memory.seconds != float(seconds):
                memory = app.extensions["stellaops.transient_memory"] = TransientMemory(seconds)
    return memory  # type: ignore[no-any-return]


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


# the envelope of a ProviderResponse around its items and systemError, and a comma per item
_ENVELOPE_BYTES = len(b'{"apiVersion":"' + API_VERSION.encode() + b'","kind":"ProviderResponse","response":{"idempotent":true,"items":[],"systemError":""}}')


def _assemble(answered: list[tuple[str, bytes]], cap: int) -> tuple[list[bytes], list[tuple[str, str]]]:
    """The items that fit in a response of ``cap`` bytes (``limits.responseBytes``, room kept
    for the envelope and a full ``systemError``), and the keys left out, with why.

    A key left out goes to ``systemError``, not to a per-key error item, on purpose: Gatekeeper
    caches every item it gets, errors included, for its TTL (minutes), but never a
    ``systemError``. Not fitting is a property of *this request* (which other keys came with
    it, how big their verdicts are), not of the key: as an item it would deny the image for
    minutes after a small request would have admitted it. Transient, the next admission asks
    Gatekeeper's cache for the keys this answer carried and the provider only for the rest, so
    the answers get smaller until every key has its verdict. Only an item too big for any
    response on its own (a verdict over the whole cap) is a property of the key: it becomes a
    definitive ``LIMIT_EXCEEDED`` item, which denies. Keys over the cap are not put in the
    transient memory: the registry did not stall, the next call can answer them.
    """
    # a cap configured below the systemError reserve still lets half of it carry items
    room = max(cap - _ENVELOPE_BYTES - SYSTEM_ERROR_BYTES - 64, cap // 2)
    items: list[bytes] = []
    overflow: list[tuple[str, str]] = []
    used = 0
    for key, item in answered:
        size = len(item) + (1 if items else 0)
        if used + size <= room:
            items.append(item)
            used += size
            continue
        if len(item) > room:  # never fits: a definitive error the image's policies deny on
            small = _item(key, error=(
                f"LIMIT_EXCEEDED: the verdict of {len(item)} bytes is over limits.responseBytes ({cap}) on its own;"
                " raise limits.responseBytes or lower limits.verdictBytes"
            ))
            small_size = len(small) + (1 if items else 0)
            if used + small_size <= room:
                items.append(small)
                used += small_size
                continue
        overflow.append((key, f"LIMIT_EXCEEDED: this answer reached limits.responseBytes ({cap}); {key} is answered on the next call"))
    return items, overflow


def _system_error(transient: list[tuple[str, str]]) -> str:
    """"transient failure, retry: key: reason; …", at most :data:`SYSTEM_ERROR_BYTES` bytes."""
    if not transient:
        return ""
    text = "transient failure, retry: "
    for i, (key, reason) in enumerate(transient):
        part = ("; " if i else "") + f"{key}: {reason}"
        if len((text + part).encode()) > SYSTEM_ERROR_BYTES - 64:
            return text + f"; and {len(transient) - i} more keys (the rest of the list is cut at {SYSTEM_ERROR_BYTES} bytes)"
        text += part
    return text


def _capped_item(key: str, verdict: Any, verdict_bytes: int) -> bytes:
    """The key's item, or a definitive ``LIMIT_EXCEEDED`` error when its verdict is over
    ``limits.verdictBytes``. The engine bounds every verdict it computes before caching it
    (``bounds.bound_verdict``), so only bytes cached by something else (an older release sharing
    the Redis cache, a tampered cache) can be over; they are spliced unparsed, so checked here."""
    item = _item(key, verdict)
    overhead = len(key) * 2 + 256  # the key appears in "key" and in the verdict's "image"
    if verdict_bytes > 0 and len(item) > verdict_bytes + overhead:
        return _item(key, error=(
            f"LIMIT_EXCEEDED: the verdict of {len(item)} bytes is over limits.verdictBytes ({verdict_bytes});"
            " it comes from the verdict cache: clear the cache (cache.redisUrl) or wait for its TTL"
        ))
    return item


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
    memory = transient_memory(current_app, config.server.transient_memory_seconds)
    remembered: dict[str, str] = {}
    fresh: list[str] = []
    for key in valid:
        text = memory.recall(key)
        if text is None:
            fresh.append(key)
        else:
            remembered[key] = text
    result = engine.verify_batch(fresh, deadline=deadline) if fresh else None
    transient: list[tuple[str, str]] = []
    answered: list[tuple[str, bytes]] = []  # (key, item) in request order
    seen: set[str] = set()
    for key in keys:
        k = key if isinstance(key, str) else json.dumps(key)
        if k in seen:
            continue
        seen.add(k)
        if k in per_key_errors:
            answered.append((k, _item(k, error=per_key_errors[k])))
        elif k in remembered:
            transient.append((k, remembered[k]))
        elif result is not None and k in result.verdicts:
            answered.append((k, _capped_item(k, result.verdicts[k], config.limits.verdict_bytes)))
        elif result is not None and k in result.errors:
            err = result.errors[k]
            if err.transient:
                transient.append((k, str(err)))
                memory.remember(k, str(err))
            else:
                answered.append((k, _item(k, error=str(err))))
    items, overflow = _assemble(answered, config.limits.response_bytes)
    transient.extend(overflow)
    system_error = _system_error(transient)
    log.info(
        "provider request",
        extra={
            "request_id": g.get("request_id"),
            "keys": len(keys),
            "items": len(items),
            "transient": len(transient),
            "remembered": len(remembered),
            "over_response_cap": len(overflow),
            "duration_ms": round((time.monotonic() - started) * 1000, 2),
        },
    )
    return provider_response(items, system_error)
