"""The cache contract, on the in-process cache and on the real Redis."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from services.runtime.cache import Cache, CacheError, MemoryCache, RedisCache, create_cache
from services.runtime.config import Settings
from tests.integration.conftest import MakeSettings

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
SHORT_TTL_S = 0.05
PAST_SHORT_TTL_S = 0.15


@pytest.fixture
def prefix() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_cleanup(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    """A raw client on the test Redis; deletes this test's keys afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("redis", marks=pytest.mark.redis)],
)
def cache(request: pytest.FixtureRequest, prefix: str) -> Iterator[Cache]:
    if request.param == "memory":
        implementation: Cache = MemoryCache()
    else:
        request.getfixturevalue("redis_cleanup")
        implementation = RedisCache(request.getfixturevalue("redis_url"), prefix=prefix)
    yield implementation
    implementation.close()


def test_get_set_delete(cache: Cache) -> None:
    assert cache.get("part") is None
    cache.set("part", b"gear")
    assert cache.get("part") == b"gear"
    cache.set("part", b"shaft")
    assert cache.get("part") == b"shaft"
    cache.delete("part")
    assert cache.get("part") is None
    cache.delete("part")  # deleting a missing key is fine


def test_entries_expire_after_their_ttl(cache: Cache) -> None:
    cache.set("short", b"1", ttl_s=SHORT_TTL_S)
    cache.set("long", b"2", ttl_s=60)
    cache.set("forever", b"3")
    assert cache.get("short") == b"1"

    time.sleep(PAST_SHORT_TTL_S)

    assert cache.get("short") is None
    assert cache.get("long") == b"2"
    assert cache.get("forever") == b"3"


def test_set_without_ttl_removes_an_earlier_ttl(cache: Cache) -> None:
    cache.set("part", b"old", ttl_s=SHORT_TTL_S)
    cache.set("part", b"new")

    time.sleep(PAST_SHORT_TTL_S)

    assert cache.get("part") == b"new"


def test_set_if_absent_stores_only_once(cache: Cache) -> None:
    assert cache.set_if_absent("request-1", b"first", ttl_s=60) is True
    assert cache.set_if_absent("request-1", b"second", ttl_s=60) is False
    assert cache.get("request-1") == b"first"

    cache.delete("request-1")
    assert cache.set_if_absent("request-1", b"third", ttl_s=None) is True
    assert cache.get("request-1") == b"third"


def test_set_if_absent_succeeds_again_once_expired(cache: Cache) -> None:
    assert cache.set_if_absent("request-1", b"first", ttl_s=SHORT_TTL_S) is True

    time.sleep(PAST_SHORT_TTL_S)

    assert cache.set_if_absent("request-1", b"second", ttl_s=60) is True
    assert cache.get("request-1") == b"second"


def test_set_if_absent_has_exactly_one_winner_among_threads(cache: Cache) -> None:
    contenders = 16
    start = threading.Barrier(contenders)
    results: list[bool] = []
    lock = threading.Lock()

    def contend(n: int) -> None:
        start.wait()
        won = cache.set_if_absent("request-1", str(n).encode(), ttl_s=60)
        with lock:
            results.append(won)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * (contenders - 1) + [True]


@pytest.mark.parametrize("ttl_s", [0, -1, float("inf"), float("nan")])
def test_nonsense_ttl_is_refused(cache: Cache, ttl_s: float) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        cache.set("part", b"gear", ttl_s=ttl_s)
    with pytest.raises(ValueError, match="ttl_s"):
        cache.set_if_absent("part", b"gear", ttl_s=ttl_s)
    assert cache.get("part") is None


def test_ping_when_reachable(cache: Cache) -> None:
    assert cache.ping() is True


def test_memory_cache_follows_its_clock() -> None:
    now = [1000.0]
    cache = MemoryCache(clock=lambda: now[0])
    cache.set("part", b"gear", ttl_s=10)
    assert cache.set_if_absent("request-1", b"x", ttl_s=5) is True

    now[0] += 4.999
    assert cache.get("part") == b"gear"
    assert cache.set_if_absent("request-1", b"y", ttl_s=5) is False

    now[0] += 0.001
    assert cache.set_if_absent("request-1", b"z", ttl_s=5) is True

    now[0] += 5
    assert cache.get("part") is None


@pytest.mark.redis
def test_redis_keys_are_namespaced(redis_url: str, prefix: str, redis_cleanup: redis.Redis) -> None:
    first = RedisCache(redis_url, prefix=prefix)
    second = RedisCache(redis_url, prefix=f"{prefix}:other")
    try:
        first.set("part", b"gear")
        second.set("part", b"shaft")

        assert first.get("part") == b"gear"
        assert second.get("part") == b"shaft"
        assert redis_cleanup.get(f"{prefix}:part") == b"gear"
        assert redis_cleanup.get("part") is None
    finally:
        first.close()
        second.close()


def test_unreachable_redis_fails_fast_and_clearly() -> None:
    cache = RedisCache(UNREACHABLE_REDIS, prefix="t", timeout_s=0.5)
    started = time.monotonic()

    assert cache.ping() is False
    with pytest.raises(CacheError, match="get"):
        cache.get("part")
    with pytest.raises(CacheError, match="set_if_absent"):
        cache.set_if_absent("part", b"gear", ttl_s=1)

    assert time.monotonic() - started < 3
    cache.close()


def _with_redis(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": url})})


@pytest.mark.redis
def test_create_cache_uses_redis_namespaced_by_service(
    make_settings: MakeSettings, redis_url: str, prefix: str, redis_cleanup: redis.Redis
) -> None:
    cache = create_cache(_with_redis(make_settings(service=prefix), redis_url))
    try:
        assert isinstance(cache, RedisCache)
        cache.set("part", b"gear", ttl_s=60)
        assert redis_cleanup.get(f"{prefix}:part") == b"gear"
    finally:
        cache.close()


def test_create_cache_does_not_log_the_redis_password(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    # Constructing the client does not connect: no server needed.
    url = "redis://:s3cret@cache.invalid:6379/0"
    with caplog.at_level(logging.INFO, logger="services.runtime.cache"):
        cache = create_cache(_with_redis(make_settings(), url))
    cache.close()

    assert "cache.invalid" in caplog.text
    assert "s3cret" not in caplog.text


def test_create_cache_falls_back_to_memory(make_settings: MakeSettings) -> None:
    cache = create_cache(make_settings())
    assert isinstance(cache, MemoryCache)
    cache.close()
