"""RedisCache against a real redis-server on loopback: sharing, expiry, prefixes, outages."""

from __future__ import annotations

import time

import redis

from stellaops.cache import RedisCache, open_cache


def test_round_trip_shared_between_two_clients(redis_url) -> None:  # type: ignore[no-untyped-def]
    a, b = RedisCache(redis_url), RedisCache(redis_url)  # two replicas
    a.set("verdict:v1:fp:sha256:1", b'{"verified":true}', 60)
    assert b.get("verdict:v1:fp:sha256:1") == b'{"verified":true}'
    assert b.get("verdict:v1:fp:sha256:2") is None
    s = b.stats()
    assert (s["hits"], s["misses"], s["errors"]) == (1, 1, 0)


def test_entries_expire_with_their_ttl(redis_url) -> None:  # type: ignore[no-untyped-def]
    c = RedisCache(redis_url)
    c.set("short", b"x", 0.2)
    c.set("long", b"y", 60)
    raw = redis.Redis.from_url(redis_url)
    assert 0 < raw.pttl("stellaops:short") <= 200
    assert 59_000 < raw.pttl("stellaops:long") <= 60_000
    time.sleep(0.35)
    assert c.get("short") is None and c.get("long") == b"y"


def test_clear_removes_only_this_prefix(redis_url) -> None:  # type: ignore[no-untyped-def]
    raw = redis.Redis.from_url(redis_url)
    raw.set("someone-else:key", b"keep")
    mine, other = RedisCache(redis_url, prefix="a[1]*:"), RedisCache(redis_url, prefix="b:")
    for i in range(1200):
        mine.set(f"k{i}", b"v", 60)
    other.set("k", b"v", 60)
    raw.set("a[1]x:k", b"keep")  # would match the prefix if its glob characters were not escaped
    mine.clear()
    assert mine.get("k1") is None and other.get("k") == b"v"
    assert raw.get("someone-else:key") == b"keep" and raw.get("a[1]x:k") == b"keep"


def test_open_cache_uses_redis_when_configured(redis_url) -> None:  # type: ignore[no-untyped-def]
    from stellaops.config import CacheConfig

    c = open_cache(CacheConfig(redis_url=redis_url))
    c.set("k", b"v", 5)
    assert c.get("k") == b"v" and c.stats()["backend"] == "redis"


def test_redis_stopped_is_a_miss_then_recovers(redis_server, redis_url) -> None:  # type: ignore[no-untyped-def]
    c = RedisCache(redis_url, retry_after=0.3)
    c.set("k", b"v", 60)
    redis_server.stop()
    assert c.get("k") is None  # a miss, no exception: the provider keeps answering
    c.set("k2", b"v", 60)
    assert c.get("k2") is None
    s = c.stats()
    assert s["errors"] >= 1 and s["available"] is False
    redis_server.start()  # empty again: no persistence
    time.sleep(0.4)  # past retry_after: Redis is asked again
    c.set("k3", b"back", 60)
    assert c.get("k3") == b"back"
    assert c.stats()["available"] is True


def test_delete_forgets_one_entry_for_every_replica(redis_url) -> None:  # type: ignore[no-untyped-def]
    a, b = RedisCache(redis_url), RedisCache(redis_url)
    a.set("x", b"1", 60)
    a.set("y", b"2", 60)
    b.delete("x")
    assert a.get("x") is None and a.get("y") == b"2"
