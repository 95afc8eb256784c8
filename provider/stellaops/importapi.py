"""``POST /api/v1/attestations/import``: the authenticated import API (one blueprint).

The body is what ``cosign download attestation`` prints (DSSE envelopes and sigstore bundles,
one JSON document per line), sent as ``application/json`` or ``application/x-ndjson``. The
caller authenticates with ``Authorization: Bearer <token>``; each token in
``importApi.tokens`` is bound to one tenant, and the tenant comes from the token only, never
from the request. ``?image=REF`` (or ``?digest=sha256:…``) makes every statement prove it is
about that image; without it each attestation is stored under its statement's subjects.

Status codes (docs/import.md):
- 200: every document imported or already there (``duplicate``), or some failed: the body's
  ``errors`` count and per-document ``results`` say which (importing is idempotent, so
  re-sending the whole body after fixing the bad documents is safe);
- 422: every document failed (nothing stored);
- 400: the body is not JSON documents (per-document ``problems``), or a bad query (including an
  ``image`` that does not parse, does not exist or may not be contacted);
- 401: no token, or a token that matches no tenant (``WWW-Authenticate: Bearer``);
- 413: the body is larger than ``importApi.maxBodyBytes`` (4 MiB by default) or holds more
  than 1000 documents; 415: another content type;
- 503: the store (or the registry resolving ``image``) is unavailable: retry.

Tokens and envelopes are never logged: the log line names the tenant, the counts and the
stored ids.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import StellaError, StoreError
from .importer import ImportSyntaxError, import_items, parse_cosign_download, resolve_image

log = logging.getLogger("stellaops.importapi")

bp = Blueprint("importapi", __name__)

IMPORT_PATH = "/api/v1/attestations/import"
CONTENT_TYPES = ("application/json", "application/x-ndjson")
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
QUERY_PARAMS = ("image", "digest")
ANNOTATION_SOURCE = "dev.stellaops/import-source"

_STORE_KEY = "stellaops.store"
_REGISTRY_KEY = "stellaops.import.registry"
_lock = threading.Lock()

_HOW_TO_AUTHENTICATE = (
    "pass a tenant's import token as -H 'Authorization: Bearer <token>'; tokens are configured"
    " in importApi.tokens (tenant + tokenFile) of the provider's stellaops.yaml"
)


def get_store(app: Flask | None = None) -> Any:
    """The app's attestation store, opened from its config on first use if ``create_app``
    did not set one (so a bare Flask app with only this blueprint works)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    store = app.extensions.get(_STORE_KEY)
    if store is None:
        with _lock:
            store = app.extensions.get(_STORE_KEY)
            if store is None:
                from .store import open_store

                config = app.config.get("STELLAOPS_CONFIG")
                if config is not None:
                    store = open_store(config.store.dsn, rows_per_tenant_digest=config.limits.store_rows_per_tenant_digest)
                else:
                    store = open_store(None)
                app.extensions[_STORE_KEY] = store
    return store


def _registry_client() -> Any:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    client = app.extensions.get(_REGISTRY_KEY)
    if client is None:
        with _lock:
            client = app.extensions.get(_REGISTRY_KEY)
            if client is None:
                from .clients import make_registry_client

                config = app.config.get("STELLAOPS_CONFIG")
                if config is None:
                    from .config import Config

                    config = Config()
                client = app.extensions[_REGISTRY_KEY] = make_registry_client(config)
    return client


def _import_config() -> tuple[tuple[Any, ...], int]:
    config = current_app.config.get("STELLAOPS_CONFIG")
    api = getattr(config, "import_api", None)
    if api is None:
        return (), DEFAULT_MAX_BODY_BYTES
    return tuple(api.tokens), int(api.max_body_bytes or DEFAULT_MAX_BODY_BYTES)


def _error(status: int, reason: str, message: str, hint: str = "", **extra: Any) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": {"reason": reason, "message": message, "hint": hint}}
    body.update(extra)
    return jsonify(body), status


def _unauthorized(message: str, error: str = "invalid_request") -> tuple[Response, int]:
    resp, status = _error(401, "UNAUTHORIZED", message, _HOW_TO_AUTHENTICATE)
    resp.headers["WWW-Authenticate"] = f'Bearer realm="stellaops-import", error="{error}"'
    return resp, status


def authenticate(header: str, tokens: tuple[Any, ...]) -> str | None:
    """The tenant whose token ``header`` (``Bearer <token>``) carries, or None.

    Every configured token is compared, with :func:`hmac.compare_digest` over sha256 digests
    (equal lengths, so neither the content nor the length of a token leaks through timing),
    and the loop never exits early, so the time taken does not say which token matched."""
    scheme, _, value = header.strip().partition(" ")
    presented = value.strip()
    if scheme.lower() != "bearer" or not presented:
        return None
    presented_digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
    matched: list[str] = []
    for token in tokens:
        if hmac.compare_digest(presented_digest, hashlib.sha256(token.token).digest()):
            matched.append(token.tenant)
    # config.py refuses two tenants sharing a token; refuse here too rather than pick one
    return matched[0] if len(matched) == 1 else None


def _status_for(exc: StellaError) -> int:
    """An ``image`` that cannot be resolved: retry later (503) or a bad query (400)."""
    return 503 if exc.transient else 400


@bp.post(IMPORT_PATH)
def import_attestations() -> tuple[Response, int]:
    tokens, max_body = _import_config()

    # 1. who: the tenant comes from the token, and only from it
    header = request.headers.get("Authorization", "")
    if not header:
        log.info("import refused: no Authorization header", extra={"remote": request.remote_addr})
        return _unauthorized("authentication required: this endpoint needs a bearer token")
    tenant = authenticate(header, tokens)
    if tenant is None:
        log.warning("import refused: bearer token matches no tenant", extra={"remote": request.remote_addr})
        if not tokens:
            log.warning("the import API has no tokens configured (importApi.tokens): every import is refused")
        return _unauthorized("the bearer token is not valid for any tenant", "invalid_token")

    # 2. what: query, type and size, before reading the body
    unknown = sorted(set(request.args) - set(QUERY_PARAMS))
    if unknown:
        hint = "the tenant comes from the bearer token" if "tenant" in unknown else f"known parameters: {', '.join(QUERY_PARAMS)}"
        return _error(400, "REQUEST_INVALID", f"unknown query parameter(s) {unknown}", hint)
    if request.mimetype not in CONTENT_TYPES:
        return _error(
            415, "REQUEST_INVALID",
            f"Content-Type is {request.mimetype or 'missing'!r}, expected one of {list(CONTENT_TYPES)}",
            "send -H 'Content-Type: application/json' (or application/x-ndjson)",
        )  # fmt: skip
    too_large = _error(
        413, "LIMIT_EXCEEDED", f"the body is larger than the import limit of {max_body} bytes",
        "import fewer attestations per request, or raise importApi.maxBodyBytes",
    )  # fmt: skip
    if request.content_length is not None and request.content_length > max_body:
        return too_large
    try:
        data = request.stream.read(max_body + 1)
    except RequestEntityTooLarge:
        return too_large
    if len(data) > max_body:
        return too_large

    # 3. parse, resolve the image, store
    try:
        items = parse_cosign_download(data)
    except ImportSyntaxError as exc:
        status = 413 if exc.reason == "LIMIT_EXCEEDED" else 400
        return _error(status, exc.reason, exc.detail, exc.hint, problems=exc.problems)
    image = request.args.get("image") or None
    try:
        # a stalled registry must not hold this thread: the same deadline as an admission call
        from .registry import deadline_scope

        config = current_app.config.get("STELLAOPS_CONFIG")
        budget = config.server.deadline_seconds if config is not None else 1.5
        with deadline_scope(time.monotonic() + budget + 1.0):
            image, digest = resolve_image(image, request.args.get("digest") or None, _registry_client)
    except StellaError as exc:
        resp, status = _error(_status_for(exc), exc.reason, f"cannot resolve the image: {exc.detail}", exc.hint)
        if status == 503:
            resp.headers["Retry-After"] = "5"
        return resp, status
    try:
        keep = config.limits.store_rows_per_tenant_digest if config is not None else None
        report = import_items(
            get_store(), tenant, items, image=image, image_digest=digest, annotations={ANNOTATION_SOURCE: "api"}, keep=keep
        )
    except StoreError as exc:
        log.error("import failed: store unavailable", extra={"tenant": tenant, "error": str(exc)})
        resp, status = _error(503, exc.reason, exc.detail, "retry later: importing again is safe (idempotent)")
        resp.headers["Retry-After"] = "5"
        return resp, status

    _count(report)
    _invalidate_verdicts(report)
    log.info(
        "attestations imported",
        extra={
            "tenant": tenant, "image": image, "digest": digest, "imported": report.imported,
            "duplicates": report.duplicates, "errors": report.errors,
            "ids": [r.get("id") for r in report.results if r.get("id")],
        },
    )  # fmt: skip
    status = 422 if report.errors and report.errors == len(report.results) else 200
    return jsonify(report.to_json()), status


def _invalidate_verdicts(report: Any) -> None:
    """A new import changes the verdict of the images it is about: drop their cached verdicts
    (through ``Engine.invalidate(digest)`` when the app's engine has it). With the Redis cache
    this reaches every replica; with the in-process cache only this one, and the others catch
    up within ``cache.ttlSeconds``/``negativeTtlSeconds``. Gatekeeper's own cache is not ours."""
    engine = current_app.extensions.get("stellaops.engine")
    invalidate = getattr(engine, "invalidate", None)
    if not callable(invalidate):
        return
    digests = {d for r in report.results if r["status"] == "imported" for d in r.get("subjects", [])}
    for digest in sorted(digests):
        try:
            invalidate(digest)
        except Exception:  # noqa: BLE001 - the import is stored; a stale cache entry only expires later
            log.warning("could not invalidate the cached verdict", extra={"digest": digest}, exc_info=True)


def _count(report: Any) -> None:
    try:
        from .metrics import IMPORTS
    except ImportError:  # pragma: no cover
        return
    for status in ("imported", "duplicate", "error"):
        n = report.count(status)
        if n:
            IMPORTS.labels(report.tenant, status).inc(n)


__all__ = ["bp", "get_store", "authenticate", "IMPORT_PATH"]
