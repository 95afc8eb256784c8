"""The provider's Flask application: ``create_app(config=None)``.

``config`` is a :class:`~stellaops.config.Config`, a path, or None (the usual search:
``$STELLAOPS_CONFIG``, ``./stellaops.yaml``, defaults). Everything that can be wrong with the
configuration fails here, at start-up, not at the first admission. gunicorn loads
``stellaops.app:create_app()`` (see ``gunicorn_conf.py``).
"""

from __future__ import annotations

import logging
import os
import time
from importlib import resources
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import logs, metrics
from .config import Config, load_config

log = logging.getLogger("stellaops.app")


def create_app(config: Config | str | None = None, *, engine: Any = None, store: Any = None) -> Flask:
    if not isinstance(config, Config):
        config = load_config(config)
    logs.configure(config.logging.level, config.logging.format)
    app = Flask("stellaops")
    app.config["STELLAOPS_CONFIG"] = config
    app.config["MAX_CONTENT_LENGTH"] = max(config.server.max_body_bytes, config.import_api.max_body_bytes)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    if store is None:
        store = _open_store(config)
    app.extensions["stellaops.store"] = store
    if engine is None:
        from .engine import Engine

        engine = Engine(config, store=store)
    app.extensions["stellaops.engine"] = engine

    from . import gatekeeper

    app.register_blueprint(gatekeeper.bp)
    from . import mutation

    app.register_blueprint(mutation.bp)  # /gatekeeper/v1/mutate: tag-to-digest pinning
    try:
        from . import importapi
    except ImportError:  # pragma: no cover - the import API ships with the package
        importapi = None  # type: ignore[assignment]
    if importapi is not None:
        app.register_blueprint(importapi.bp)
    _register_operational_routes(app)
    _prefetch_trust_material(config)
    log.info(
        "provider ready",
        extra={"config": config.source, "trust": config.trust.fingerprint, "authorities": len(config.trust.authorities)},
    )
    return app


PREFETCH_SECONDS = 5.0


def _prefetch_trust_material(config: Config) -> None:
    """Fetch trust material from a configured TUF mirror once at start-up, so the first admission
    request does not spend its deadline on it. Best effort: a mirror that is down now is retried
    on use (the key goes to ``systemError`` meanwhile), so it must not stop the provider booting."""
    roots = config.trust.sigstore
    if roots is None or roots.tuf is None:
        return  # local material is read with the config; public-good is fetched on first use
    from .errors import StellaError
    from .registry import deadline_scope
    from .verify import trustroot

    try:
        # bounded, so a slow mirror delays a worker's boot by a few seconds at most (the fetch
        # goes on in the background and the first requests find the material when it lands)
        with deadline_scope(time.monotonic() + PREFETCH_SECONDS):
            trustroot.from_roots(roots)
    except StellaError as exc:
        log.warning("trust material not fetched at start-up; retried on use", extra={"reason": exc.reason, "detail": exc.detail})


def _open_store(config: Config) -> Any:
    try:
        from .store import open_store
    except ImportError:  # pragma: no cover
        return None
    return open_store(config.store.dsn)


def _register_operational_routes(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.request_id = logs.new_request_id(request.headers.get("X-Request-Id"))
        g.started = time.monotonic()

    @app.after_request
    def _finish(resp: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.REQUEST_LATENCY.labels(endpoint).observe(time.monotonic() - g.get("started", time.monotonic()))
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | tuple[Response, int]:
        code = exc.code or 500
        if request.path in ("/gatekeeper/v1/verify", "/gatekeeper/v1/mutate") and code in (400, 413):
            # Gatekeeper reads the body whatever the status: answer in its protocol
            from .gatekeeper import provider_response, too_large_response

            return too_large_response() if code == 413 else provider_response([], f"bad ProviderRequest: {exc.description}", status=400)
        return jsonify({"error": {"reason": "REQUEST_INVALID" if code < 500 else "INTERNAL_ERROR", "message": exc.description}}), code

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error", extra={"request_id": g.get("request_id")})
        return jsonify({"error": {"reason": "INTERNAL_ERROR", "message": "internal error; see the provider log", "requestId": g.get("request_id")}}), 500

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        config: Config = app.config["STELLAOPS_CONFIG"]
        checks: dict[str, str] = {"config": "ok", "trust": "ok" if config.trust.fingerprint else "missing"}
        store = app.extensions.get("stellaops.store")
        if store is not None and hasattr(store, "ping"):
            try:
                store.ping()
                checks["store"] = "ok"
            except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
                checks["store"] = f"unavailable: {exc}"
        ready = all(v == "ok" for v in checks.values())
        return jsonify({"status": "ready" if ready else "not ready", "checks": checks}), 200 if ready else 503

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/openapi.yaml")
    def openapi() -> Response:
        text = resources.files("stellaops").joinpath("openapi.yaml").read_text(encoding="utf-8")
        return Response(text, mimetype="application/yaml")
