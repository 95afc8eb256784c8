"""Verdict cache: the in-memory backend, backend selection, and Redis-down behaviour.

Redis against a real server is in tests/integration/test_cache_redis.py; here "Redis down" is
a loopback port nobody listens on (a real refused connection).
"""

from __future__ import annotations

import threading
import time

import pytest

from stellaops.cache import ENTRY_OVERHEAD_BYTES, MemoryCache, RedisCache, VerdictCache, open_cache
from tests.fixtures.services import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_cache_round_trip_and_stats() -> None:
    c = MemoryCache(10_000)
    assert isinstance(c, VerdictCache)
    assert c.get("k") is None
    c.set("k", b"verdict", 60)
    assert c.get("k") == b"verdict"
    s = c.stats()
    assert (s["hits"], s["misses"], s["entries"], s["bytes"]) == (1, 1, 1, len(b"verdict") + ENTRY_OVERHEAD_BYTES)


def test_memory_cache_entries_expire_by_their_own_ttl() -> None:
    clock = Clock()
    c = MemoryCache(10_000, timer=clock)
    c.set("short", b"negative", 30)
    c.set("long", b"positive", 300)
    clock.now += 31
    assert c.get("short") is None and c.get("long") == b"positive"
    clock.now += 300
    assert c.get("long") is None


def test_memory_cache_is_bounded_by_bytes_evicting_least_recently_used() -> None:
    entry = 100
    c = MemoryCache(3 * (entry + ENTRY_OVERHEAD_BYTES))
    for k in "abc":
        c.set(k, b"x" * entry, 60)
    assert c.get("a") is not None  # a is now the most recently used
    c.set("d", b"x" * entry, 60)
    assert c.get("b") is None and c.get("a") and c.get("c") and c.get("d")
    assert c.stats()["bytes"] <= c.max_bytes


def test_memory_cache_does_not_keep_a_value_larger_than_the_cache() -> None:
    c = MemoryCache(1000)
    c.set("k", b"small", 60)
    c.set("k", b"x" * 2000, 60)
    assert c.get("k") is None  # the stale small value is not served either
    assert c.stats()["rejected"] == 1


def test_memory_cache_zero_ttl_is_not_cached_and_clear_empties() -> None:
    c = MemoryCache(1000)
    c.set("k", b"v", 0)
    assert c.get("k") is None
    c.set("k", b"v", 10)
    c.clear()
    assert c.get("k") is None and c.stats()["entries"] == 0


def test_memory_cache_is_thread_safe_under_concurrent_use() -> None:
    c = MemoryCache(50 * (16 + ENTRY_OVERHEAD_BYTES))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(2000):
                key = f"k{(i * n) % 97}"
                c.set(key, key.encode().ljust(16, b"."), 60)
                v = c.get(key)
                assert v is None or v.startswith(b"k")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and c.stats()["bytes"] <= c.max_bytes


def test_memory_cache_refuses_a_non_positive_bound() -> None:
    with pytest.raises(ValueError):
        MemoryCache(0)


def test_open_cache_picks_the_backend_from_redis_url() -> None:
    from stellaops.config import CacheConfig

    assert isinstance(open_cache(CacheConfig()), MemoryCache)
    assert open_cache(CacheConfig(max_bytes=1234)).max_bytes == 1234  # type: ignore[attr-defined]
    assert isinstance(open_cache(CacheConfig(redis_url="redis://127.0.0.1:6379/0")), RedisCache)
    assert isinstance(open_cache({"redisUrl": "redis://127.0.0.1:6379/0"}), RedisCache)
    assert isinstance(open_cache(None), MemoryCache)


def test_redis_down_is_a_miss_not_an_exception() -> None:
    c = RedisCache(f"redis://127.0.0.1:{free_port()}/0", retry_after=60)
    started = time.monotonic()
    assert c.get("k") is None
    c.set("k", b"v", 60)  # swallowed
    assert c.get("k") is None
    c.clear()  # swallowed
    s = c.stats()
    assert s["errors"] == 1 and s["misses"] == 2 and s["available"] is False
    assert s["skipped"] >= 2  # within retry_after, Redis is not asked again
    assert time.monotonic() - started < 2
    assert "ConnectionError" in s["lastError"]


def test_redis_url_password_is_not_shown() -> None:
    c = RedisCache(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert "hunter2" not in c.stats()["url"]


def test_memory_cache_delete_forgets_one_entry() -> None:
    c = MemoryCache(1000)
    c.set("a", b"1", 60)
    c.set("b", b"2", 60)
    c.delete("a")
    c.delete("missing")
    assert c.get("a") is None and c.get("b") == b"2"
