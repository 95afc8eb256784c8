"""Verdict cache: in-process (bounded by bytes, per-entry TTL) or Redis (shared by replicas).

The engine keys verdicts by (digest, trust-config fingerprint) and gives each entry its own
TTL (shorter for negative verdicts). The cache holds opaque bytes. A cache is an accelerator,
never a dependency: every backend failure is a miss (counted in ``stats()["errors"]``), so the
provider keeps answering admissions when Redis is down, only slower.

- :class:`MemoryCache`: ``cachetools.TLRUCache`` (LRU eviction bounded by the total size of
  keys and values, expiry per entry), behind a lock: cachetools caches are not thread-safe.
- :class:`RedisCache`: redis-py, entries under a key prefix with ``PX`` expiry. Short socket
  timeouts and no client retries, and after a failure Redis is not asked again for
  ``retry_after`` seconds (every lookup in that window is a miss), so an outage costs at most
  one timeout per window instead of one per key, within the provider's 1.5 s deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("stellaops.cache")

ENTRY_OVERHEAD_BYTES = 64  # bookkeeping per entry counted against max_bytes
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_PREFIX = "stellaops:"


@runtime_checkable
class VerdictCache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def clear(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class MemoryCache:
    """In-process LRU cache bounded by bytes, each entry with its own TTL. Thread-safe."""

    backend = "memory"

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, *, timer: Any = time.monotonic) -> None:
        from cachetools import TLRUCache

        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._timer = timer
        self._lock = threading.Lock()
        # value = (bytes, expiry on the timer's clock); ttu reads the expiry back
        self._cache: TLRUCache[str, tuple[bytes, float]] = TLRUCache(
            maxsize=self.max_bytes,
            ttu=lambda _key, value, _now: value[1],
            timer=timer,
            getsizeof=lambda value: len(value[0]) + ENTRY_OVERHEAD_BYTES,
        )
        self._hits = self._misses = self._sets = self._rejected = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                self._misses += 1
                return None
            self._hits += 1
            return entry[0]

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        value = bytes(value)
        with self._lock:
            try:
                self._cache[key] = (value, self._timer() + float(ttl))
                self._sets += 1
            except ValueError:  # larger than the whole cache: not cached
                self._cache.pop(key, None)
                self._rejected += 1

    def delete(self, key: str) -> None:
        with self._lock:
            self._cache.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._cache.expire()
            return {
                "backend": self.backend,
                "hits": self._hits,
                "misses": self._misses,
                "sets": self._sets,
                "rejected": self._rejected,
                "errors": 0,
                "entries": len(self._cache),
                "bytes": int(self._cache.currsize),
                "maxBytes": self.max_bytes,
            }


class RedisCache:
    """Redis-backed cache shared by replicas; on any Redis error it behaves as a miss."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float = 0.25,
        retry_after: float = 2.0,
        max_value_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url_display = _redact_url(url)
        self.prefix = prefix
        self.retry_after = float(retry_after)
        self.max_value_bytes = int(max_value_bytes)
        self._errors_type: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),  # no hidden retries: one short timeout per failure
            retry_on_timeout=False,
            health_check_interval=30,
        )
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down = False
        self._hits = self._misses = self._sets = self._errors = self._skipped = 0
        self._last_error = ""

    # -- failure handling ----------------------------------------------------------------
    def _available(self) -> bool:
        with self._lock:
            if time.monotonic() < self._down_until:
                self._skipped += 1
                return False
            return True

    def _failed(self, op: str, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1
            first, self._down = not self._down, True
            self._down_until = time.monotonic() + self.retry_after
            self._last_error = f"{op}: {type(exc).__name__}: {exc}"
        if first:
            log.warning(
                "verdict cache: Redis %s failed, serving without the cache for %.1fs: %s",
                self.url_display, self.retry_after, exc,
            )  # fmt: skip

    def _recovered(self) -> None:
        if self._down:
            with self._lock:
                was_down, self._down = self._down, False
                self._down_until = 0.0
                if was_down:
                    log.info("verdict cache: Redis %s is answering again", self.url_display)

    # -- API -----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        if not self._available():
            self._count_miss()
            return None
        try:
            value = self._client.get(self.prefix + key)
        except self._errors_type as exc:
            self._failed("GET", exc)
            self._count_miss()
            return None
        self._recovered()
        with self._lock:
            if value is None:
                self._misses += 1
            else:
                self._hits += 1
        return bytes(value) if value is not None else None

    def _count_miss(self) -> None:
        with self._lock:
            self._misses += 1

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0 or len(value) > self.max_value_bytes or not self._available():
            return
        try:
            self._client.set(self.prefix + key, bytes(value), px=max(1, int(ttl * 1000)))
        except self._errors_type as exc:
            self._failed("SET", exc)
            return
        self._recovered()
        with self._lock:
            self._sets += 1

    def delete(self, key: str) -> None:
        """Forget one entry (e.g. the verdict of an image that just got a new import)."""
        if not self._available():
            return
        try:
            self._client.delete(self.prefix + key)
        except self._errors_type as exc:
            self._failed("DEL", exc)

    def clear(self) -> None:
        """Delete this cache's entries (only keys under ``prefix``; never FLUSHDB). Verdict keys
        carry the trust fingerprint, so entries a failed clear leaves behind are never served
        under a new trust configuration."""
        if not self._available():
            return
        try:
            batch: list[bytes] = []
            for k in self._client.scan_iter(match=_glob_escape(self.prefix) + "*", count=500):
                batch.append(k)
                if len(batch) >= 500:
                    self._client.delete(*batch)
                    batch = []
            if batch:
                self._client.delete(*batch)
        except self._errors_type as exc:
            self._failed("clear", exc)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": self.backend,
                "url": self.url_display,
                "prefix": self.prefix,
                "hits": self._hits,
                "misses": self._misses,
                "sets": self._sets,
                "errors": self._errors,
                "skipped": self._skipped,
                "available": not self._down,
                "lastError": self._last_error,
            }

    def close(self) -> None:
        self._client.close()


def _glob_escape(text: str) -> str:
    out = []
    for ch in text:
        out.append("\\" + ch if ch in "*?[]\\" else ch)
    return "".join(out)


def _redact_url(url: str) -> str:
    import re

    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", re.sub(r"(://)([^:/@]+)@", r"\1***@", url))


def open_cache(cache_config: Any = None) -> VerdictCache:
    """The verdict cache the configuration asks for: Redis when ``redis_url`` is set, else memory.

    ``cache_config`` is ``Config.cache`` (``redis_url``, ``max_bytes``, optional
    ``redis_prefix``) or a mapping with the same keys (or their YAML spellings)."""

    def get(name: str, yaml_name: str, default: Any) -> Any:
        if cache_config is None:
            return default
        if isinstance(cache_config, dict):
            return cache_config.get(name, cache_config.get(yaml_name, default))
        return getattr(cache_config, name, default)

    url = get("redis_url", "redisUrl", "") or ""
    if url:
        return RedisCache(url, prefix=get("redis_prefix", "redisPrefix", DEFAULT_PREFIX) or DEFAULT_PREFIX)
    return MemoryCache(int(get("max_bytes", "maxBytes", DEFAULT_MAX_BYTES) or DEFAULT_MAX_BYTES))


__all__ = ["VerdictCache", "MemoryCache", "RedisCache", "open_cache"]
