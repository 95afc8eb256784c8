"""Prometheus metrics (prometheus-client). Names are part of the operations contract
(docs/operations.md). Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR
(the shipped gunicorn config does) so /metrics aggregates every worker."""

from __future__ import annotations

import threading

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

REQUEST_LATENCY = Histogram(
    "stellaops_request_duration_seconds",
    "Time to answer one HTTP request, by endpoint.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0),
)
KEYS_PER_REQUEST = Histogram(
    "stellaops_gatekeeper_keys_per_request",
    "Number of keys in one Gatekeeper ProviderRequest.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
CACHE = Counter("stellaops_verdict_cache_total", "Verdict cache lookups by result.", ["result"])
# bound once: labels() costs a lock and a dict lookup per call on the warm path
CACHE_HIT = CACHE.labels("hit")
CACHE_MISS = CACHE.labels("miss")
REGISTRY_CALLS = Counter(
    "stellaops_registry_requests_total", "HTTP requests to registries, by registry host and outcome.", ["registry", "outcome"]
)
OUTCOMES = Counter(
    "stellaops_verification_outcomes_total",
    "Verification outcomes: VERIFIED, or the reason code of a failure.",
    ["reason"],
)
IMPORTS = Counter("stellaops_imports_total", "Imported attestations by tenant and status.", ["tenant", "status"])
RESPONSES = Counter(
    "stellaops_responses_total",
    "HTTP answers by endpoint (the route, or 'unmatched') and status code (a known code, or 'other').",
    ["endpoint", "code"],
)
# "max" over the workers' files: one series, whatever the number of workers (gauges under
# PROMETHEUS_MULTIPROC_DIR otherwise get a pid label per worker).
BUILD_INFO = Gauge(
    "stellaops_build_info", "Always 1; the labels say which build runs (stella version).", ["version", "commit"],
    multiprocess_mode="max",
)

# Status codes the provider answers with; anything else counts as "other" (the endpoint label
# is the route rule, a closed set, or "unmatched": no client can grow the series).
KNOWN_CODES = frozenset({200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 405, 406, 408, 409, 413, 415, 422, 429,
                         431, 500, 502, 503, 504})


def observe_response(endpoint: str, status: int) -> None:
    """Count one HTTP answer (bounded label cardinality)."""
    RESPONSES.labels(endpoint, str(status) if status in KNOWN_CODES else "other").inc()


def _on_request_finished(sender: Any, response: Any, **_extra: Any) -> None:
    """Flask's ``request_finished`` signal: every answer, error handlers' included."""
    from flask import request

    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    observe_response(rule, int(response.status_code))


def _record_build_info() -> None:
    from .buildinfo import build_info

    info = build_info(tree_state=False)
    BUILD_INFO.labels(info["version"], info["gitCommit"]).set(1)


def _connect() -> None:
    try:
        from flask.signals import request_finished
    except ImportError:  # pragma: no cover - the provider always has Flask
        return
    request_finished.connect(_on_request_finished)


_record_build_info()
_connect()

# Registry names come from Pod specs (attacker-controlled): only registries that answered over
# HTTP get their own label, at most this many per process; the rest count as "other", and calls
# that never reached a registry (refused, unresolvable, timed out) as "-". So no Pod author can
# grow the time series by inventing host names.
MAX_REGISTRY_LABELS = 8
_registries: set[str] = set()
_registries_lock = threading.Lock()


def observe_registry_call(registry: str, outcome: str) -> None:
    """Count one HTTP attempt to a registry (bounded label cardinality)."""
    if not outcome.endswith("xx"):
        registry = "-"
    elif registry not in _registries:
        with _registries_lock:
            if registry not in _registries:
                if len(_registries) >= MAX_REGISTRY_LABELS:
                    registry = "other"
                else:
                    _registries.add(registry)
    REGISTRY_CALLS.labels(registry, outcome).inc()
