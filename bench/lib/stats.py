"""Summaries of repeated timings: every figure is a median and a p99 over repeated runs."""

from __future__ import annotations

import math
import statistics
from typing import Any


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): the smallest sample with at least q % at or below it."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(samples_s: list[float], *, unit: str = "ms") -> dict[str, Any]:
    """Median, p99, min, max and mean of timings given in seconds, reported in ``unit``."""
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    vals = [s * scale for s in samples_s]
    if not vals:
        return {"n": 0, "unit": unit}
    return {
        "n": len(vals),
        "unit": unit,
        "median": round(statistics.median(vals), 4),
        "p99": round(percentile(vals, 99), 4),
        "min": round(min(vals), 4),
        "max": round(max(vals), 4),
        "mean": round(statistics.fmean(vals), 4),
    }


def summarize_values(values: list[float], unit: str) -> dict[str, Any]:
    """Median and p99 of plain values (e.g. keys/s of repeated load runs)."""
    if not values:
        return {"n": 0, "unit": unit}
    return {
        "n": len(values),
        "unit": unit,
        "median": round(statistics.median(values), 4),
        "p99": round(percentile(values, 99), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }
