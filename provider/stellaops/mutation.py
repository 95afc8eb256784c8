"""``POST /gatekeeper/v1/mutate``: tag-to-digest pinning through Gatekeeper's external data for
mutation (the ``Assign`` mutators in deploy/kubernetes/mutation).

Gatekeeper sends the image references at the mutated locations (``containers[].image``, …) as
keys and writes each item's ``value`` (a string) back at that location. The provider answers:

- ``value = <name>@<digest>`` when it verified at least one attestation of the image against its
  configured authorities: of the image's own digest, or, for an index, of every platform's digest
  (the same rule the policies admit an index by). The digest is the one the verification resolved,
  so the kubelet pulls what was verified even if the tag moves later. A reference already by
  digest is returned as it is;
- an item ``error`` (``NOT_VERIFIED: …``, or the verification's own reason) for a reference with
  no verified attestation: **never pinned**, so an unverifiable image is not dressed up with a
  digest; with the mutators' ``failurePolicy: Ignore`` it stays as written and the validating
  policies deny it with their message;
- transient failures (registry down, the deadline) in ``systemError``, as on the verify endpoint:
  Gatekeeper applies the mutator's failurePolicy to the whole call and caches nothing.

The same engine, caches, deadline and limits as ``/gatekeeper/v1/verify`` serve it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from .gatekeeper import _bad_request, _dumps, _item, _too_large, parse_provider_request, provider_response
from .verdict import Verdict

bp = Blueprint("gatekeeper_mutation", __name__)
log = logging.getLogger("stellaops.mutation")


class PinRefused(ValueError):
    """The verdict gives no digest that may be pinned (nothing of the image verified)."""


def pinnable(verdict: dict[str, Any]) -> bool:
    """Whether the verdict (its JSON, as Gatekeeper would see it) verified the image: an
    attestation of its own digest, or of each platform of an index (a runtime pulls one
    platform, so each must stand on its own)."""
    verified = {a.get("digest") for a in verdict.get("attestations") or [] if isinstance(a, dict) and a.get("verified") is True}
    own = verdict.get("digest")
    if isinstance(own, str) and own and own in verified:
        return True
    platforms = verdict.get("platforms") or []
    return bool(platforms) and all(p in verified for p in platforms)


def pinned_reference(key: str, verdict: Verdict) -> str:
    """``key`` with its tag replaced by the verified digest; raises :class:`PinRefused`."""
    doc = verdict.to_json()
    if not pinnable(doc):
        raise PinRefused(
            f"NOT_VERIFIED: no attestation of <{key}> verified against the configured authorities; "
            "the reference is left as written"
        )
    if "@" in key:  # already by digest: the verdict is about that digest
        return key
    digest = doc.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise PinRefused(f"NOT_VERIFIED: the verdict for <{key}> names no digest")
    slash = key.rfind("/")
    colon = key.rfind(":")
    name = key[:colon] if colon > slash else key  # a port (host:5000/app) is before the last '/'
    return f"{name}@{digest}"


def _string_item(key: str, value: str) -> bytes:
    return b'{"key":' + _dumps(key) + b',"value":' + _dumps(value) + b',"error":""}'


@bp.post("/gatekeeper/v1/mutate")
def mutate() -> Response:
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
    items: list[bytes] = []
    valid: list[str] = []
    for key in keys:
        if not isinstance(key, str):
            items.append(_item(json.dumps(key), error=f"REQUEST_INVALID: key must be a string, got {type(key).__name__}"))
        elif len(key) > config.server.max_key_length:
            items.append(_item(key, error=f"REQUEST_INVALID: key is {len(key)} characters, more than server.maxKeyLength "
                                          f"({config.server.max_key_length})"))
        else:
            valid.append(key)
    result = engine.verify_batch(valid, deadline=deadline) if valid else None
    transient: list[str] = []
    pinned = 0
    for key in dict.fromkeys(valid):
        assert result is not None
        if key in result.verdicts:
            try:
                items.append(_string_item(key, pinned_reference(key, result.verdicts[key])))
                pinned += 1
            except PinRefused as exc:
                items.append(_item(key, error=str(exc)))
        elif key in result.errors and not result.errors[key].transient:
            items.append(_item(key, error=str(result.errors[key])))
        else:
            err: Any = result.errors.get(key)
            transient.append(f"{key}: {err if err is not None else 'DEADLINE_EXCEEDED: not verified in time'}")
    system_error = "; ".join(transient)
    log.info("mutation request", extra={"request_id": g.get("request_id"), "keys": len(keys), "pinned": pinned,
                                        "transient": len(transient),
                                        "duration_ms": round((time.monotonic() - started) * 1000, 2)})
    return provider_response(items, system_error)
