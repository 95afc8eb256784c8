"""Prometheus metrics (prometheus-client). Names are part of the operations contract
(docs/operations.md). Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR
(the shipped gunicorn config does) so /metrics aggregates every worker."""

from __future__ import annotations

import threading

from prometheus_client import Counter, Histogram

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
