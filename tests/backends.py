"""The real backing servers the tests use: PostgreSQL and Redis.

A server that does not answer skips its tests with the reason, unless
``REQUIRE_SERVICES=1`` (set in CI), where it fails them: CI must not go green by
skipping. The fixtures here are registered by tests/conftest.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
PROBE_TIMEOUT_S = 2

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def unavailable(reason: str) -> NoReturn:
    """Skip for a missing server, or fail when the run requires every server."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def unique_name() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


def _postgres(url: str) -> URL:
    parsed = make_url(url)
    return (
        parsed.set(drivername="postgresql+psycopg") if parsed.drivername == "postgresql" else parsed
    )


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    probe = sa.create_engine(
        _postgres(url), poolclass=NullPool, connect_args={"connect_timeout": PROBE_TIMEOUT_S}
    )
    try:
        with probe.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as error:
        shown = _postgres(url).render_as_string(hide_password=True)
        unavailable(f"PostgreSQL not reachable at {shown}: {str(error).splitlines()[0]}")
    finally:
        probe.dispose()
    return url


@pytest.fixture(scope="session")
def postgres_admin(postgres_url: str) -> Iterator[Engine]:
    """A plain engine (no schema translation) for inspecting and dropping schemas."""
    engine = sa.create_engine(_postgres(postgres_url), pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(
        url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        unavailable(f"Redis not reachable at {url}: {error}")
    finally:
        client.close()
    return url


def drop_schemas(admin: Engine, schemas: list[str]) -> None:
    with admin.begin() as connection:
        # Never hang the suite behind a connection a failed test left in a transaction.
        connection.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
        for schema in schemas:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
