"""Byte budgets for attestation bytes held in memory: per image one for the registry's layers
and one for the imported store's rows (both ``limits.attestationBytesPerImage``, apart, so
registry bytes never starve imports: T-L24), and one per ProviderRequest over both.

A :class:`ByteBudget` is reserved *before* bytes are fetched (from the size a descriptor or the
store's ``size`` column announces), so a budget bounds what a worker holds, not what it has
already read. Thread-safe: discovery fetches with a small pool, and the keys of one request
share the request budget.
"""

from __future__ import annotations

import threading

from .errors import StellaError


class RequestBudgetExceeded(StellaError):
    """The per-request budget (``limits.attestationBytesPerRequest``) ran out for this key.

    Transient although its reason is ``LIMIT_EXCEEDED``: whether it happens depends on the
    *other* keys of the request, not on this image, so it must never be cached as this image's
    verdict (by us or by Gatekeeper): one Pod's junk images would deny another Pod's image."""

    reason = "LIMIT_EXCEEDED"

    @property
    def transient(self) -> bool:
        return True


class ByteBudget:
    """At most ``limit`` bytes reserved in total (``None``: unbounded)."""

    def __init__(self, limit: int | None, name: str) -> None:
        self.limit = limit
        self.name = name  # the configuration key, for messages: "limits.attestationBytesPerImage"
        self.used = 0
        self._lock = threading.Lock()

    def try_reserve(self, size: int) -> bool:
        """Reserve ``size`` bytes (at least 1) if they fit; False (nothing reserved) otherwise."""
        size = max(int(size), 1)
        with self._lock:
            if self.limit is not None and self.used + size > self.limit:
                return False
            self.used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used = max(0, self.used - max(int(size), 1))

    @property
    def remaining(self) -> int | None:
        with self._lock:
            return None if self.limit is None else max(0, self.limit - self.used)
