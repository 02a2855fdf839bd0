"""A small key-value cache: Redis when configured, else an in-process dictionary.

Values are bytes; callers choose their own encoding. ``set_if_absent`` is the primitive
for idempotency keys: exactly one of several concurrent callers wins. The in-process
cache only suits a single replica, since every process has its own.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import redis

from services.runtime.config import Settings

logger = logging.getLogger(__name__)

DEFAULT_REDIS_TIMEOUT_S = 2.0


class CacheError(Exception):
    """The cache backend failed (unreachable, timed out); the operation did not happen."""


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    def set_if_absent(self, key: str, value: bytes, ttl_s: float | None) -> bool:
        """Store ``value`` unless ``key`` holds one; True when this call stored it."""
        ...

    def delete(self, key: str) -> None: ...

    def ping(self) -> bool:
        """True when the backend answers; never raises."""
        ...

    def close(self) -> None: ...


def _check_ttl(ttl_s: float | None) -> None:
    if ttl_s is not None and not (ttl_s > 0 and math.isfinite(ttl_s)):
        raise ValueError(f"ttl_s must be a positive number of seconds or None, not {ttl_s!r}")


def redis_answers(client: redis.Redis) -> bool:
    """Whether Redis answers a PING: readiness for everything that depends on it."""
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError) as error:
        logger.warning("redis not reachable: %s", error)
        return False


class RedisCache:
    """Redis-backed cache; every key is stored as ``<prefix>:<key>``."""

    def __init__(
        self, url: str, prefix: str = "", timeout_s: float = DEFAULT_REDIS_TIMEOUT_S
    ) -> None:
        self._prefix = f"{prefix}:" if prefix else ""
        # Bounded timeouts: a stalled Redis must fail a call, not hang a worker thread.
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    def _key(self, key: str) -> str:
        return self._prefix + key

    def get(self, key: str) -> bytes | None:
        try:
            return cast(bytes | None, self._client.get(self._key(key)))
        except redis.RedisError as error:
            raise CacheError(f"redis get failed: {error}") from error

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        _check_ttl(ttl_s)
        try:
            self._client.set(self._key(key), value, px=_milliseconds(ttl_s))
        except redis.RedisError as error:
            raise CacheError(f"redis set failed: {error}") from error

    def set_if_absent(self, key: str, value: bytes, ttl_s: float | None) -> bool:
        _check_ttl(ttl_s)
        try:
            # SET NX is atomic on the server, so concurrent replicas agree on one winner.
            stored = self._client.set(self._key(key), value, px=_milliseconds(ttl_s), nx=True)
        except redis.RedisError as error:
            raise CacheError(f"redis set_if_absent failed: {error}") from error
        return bool(stored)

    def delete(self, key: str) -> None:
        try:
            self._client.delete(self._key(key))
        except redis.RedisError as error:
            raise CacheError(f"redis delete failed: {error}") from error

    def ping(self) -> bool:
        return redis_answers(self._client)

    def close(self) -> None:
        self._client.close()


def _milliseconds(ttl_s: float | None) -> int | None:
    # Rounded up: a TTL must never shrink to zero, which Redis rejects.
    return None if ttl_s is None else math.ceil(ttl_s * 1000)


class MemoryCache:
    """Thread-safe in-process cache; expired entries vanish on access and by periodic sweep."""

    # Sweep expired entries every so many writes, so keys never read again (idempotency
    # keys, typically) don't accumulate forever.
    _SWEEP_EVERY = 1024

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()
        self._writes = 0

    def _expires_at(self, ttl_s: float | None) -> float | None:
        _check_ttl(ttl_s)
        return None if ttl_s is None else self._clock() + ttl_s

    def _live(self, key: str) -> bytes | None:
        """The unexpired value under ``key``; caller holds the lock."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and self._clock() >= expires_at:
            del self._entries[key]
            return None
        return value

    def _store(self, key: str, value: bytes, expires_at: float | None) -> None:
        """Caller holds the lock."""
        self._entries[key] = (bytes(value), expires_at)
        self._writes += 1
        if self._writes % self._SWEEP_EVERY == 0:
            now = self._clock()
            expired = [k for k, (_, at) in self._entries.items() if at is not None and now >= at]
            for k in expired:
                del self._entries[k]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._live(key)

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        expires_at = self._expires_at(ttl_s)
        with self._lock:
            self._store(key, value, expires_at)

    def set_if_absent(self, key: str, value: bytes, ttl_s: float | None) -> bool:
        expires_at = self._expires_at(ttl_s)
        with self._lock:
            if self._live(key) is not None:
                return False
            self._store(key, value, expires_at)
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        with self._lock:
            self._entries.clear()


def create_cache(settings: Settings) -> Cache:
    """Redis when ``redis.url`` is set, namespaced by the service; else in-process."""
    if settings.redis.url:
        logger.info("cache for %s: redis %s", settings.service, _redacted(settings.redis.url))
        return RedisCache(settings.redis.url, prefix=settings.service)
    logger.info("cache for %s: in-process memory (single replica only)", settings.service)
    return MemoryCache()


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
