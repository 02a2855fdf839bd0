"""Database engine, sessions and the unit of work shared by every service.

Two backends: SQLite (the embedded default, one file per service under ``data_dir``)
and PostgreSQL, where every service owns the schema named after it. ORM tables are
declared without a schema; on PostgreSQL the engine's ``schema_translate_map`` places
them in the service's schema. Raw ``text()`` SQL is not translated: qualify it or go
through the ORM / Core table objects.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from services.runtime.config import Settings

logger = logging.getLogger(__name__)

# The only PostgreSQL driver installed; bare ``postgresql://`` would mean psycopg2.
_POSTGRES_DRIVER = "postgresql+psycopg"
READINESS_TIMEOUT_S = 2.0


def _database_url(settings: Settings) -> URL:
    """The settings' database URL, with ``postgresql://`` pointed at psycopg 3."""
    url = make_url(settings.database_url)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername=_POSTGRES_DRIVER)
    return url


def create_engine_for(settings: Settings) -> Engine:
    """An engine for ``settings.database_url``; SQLite and PostgreSQL are supported."""
    url = _database_url(settings)
    backend = url.get_backend_name()
    if backend == "sqlite":
        # Waiting out a competing writer is SQLite's analogue of waiting for a connection.
        engine = _sqlite_engine(url, busy_timeout_s=settings.database.connect_timeout_s)
    elif backend == "postgresql":
        engine = _postgres_engine(url, settings)
    else:
        raise ValueError(f"database.url: unsupported backend {backend!r} (sqlite or postgresql)")
    logger.info("database for %s: %s", settings.service, url.render_as_string(hide_password=True))
    return engine


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # Sessions move between gRPC worker threads; the pool hands a connection to one
    # thread at a time, so sqlite3's same-thread guard only gets in the way.
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})
    busy_timeout_ms = math.ceil(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # sqlite3's legacy mode skips BEGIN for SELECT, DDL and SAVEPOINT, which breaks
        # repeatable reads, transactional migrations and nested transactions: take
        # over BEGIN ourselves (the SQLAlchemy-documented recipe). The PRAGMAs below
        # then run outside any transaction, where they take effect.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # WAL lets readers proceed while one writer commits.
            cursor.execute("PRAGMA journal_mode=WAL")
            # SQLite ignores declared foreign keys unless asked, per connection.
            cursor.execute("PRAGMA foreign_keys=ON")
            # Wait for a competing writer instead of failing at once with "locked".
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def _postgres_engine(url: URL, settings: Settings) -> Engine:
    engine = sa.create_engine(
        url,
        pool_size=settings.database.pool_size,
        # A pooled connection may have been cut by a failover or an idle timeout.
        pool_pre_ping=True,
        # libpq takes whole seconds.
        connect_args={"connect_timeout": max(1, math.ceil(settings.database.connect_timeout_s))},
    )
    # Tables declared without a schema belong to the service's own schema, so the three
    # services can share one database without seeing each other's tables.
    return engine.execution_options(schema_translate_map={None: settings.database_schema})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit, when handlers turn them into responses.
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back and re-raise if not."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        # BaseException too: a cancelled or interrupted call must not leave work pending.
        session.rollback()
        raise
    finally:
        session.close()


def database_ready(engine: Engine, timeout_s: float = READINESS_TIMEOUT_S) -> bool:
    """True when the database answers ``SELECT 1``; never raises.

    Connecting is bounded by ``database.connect_timeout_s`` (PostgreSQL) and the query
    by ``timeout_s``. A fully checked-out pool still makes this wait for a connection.
    """
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                timeout_ms = max(1, math.ceil(timeout_s * 1000))
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {timeout_ms}")
            connection.execute(sa.text("SELECT 1")).scalar_one()
            connection.rollback()
    except (SQLAlchemyError, OSError) as error:
        logger.warning("database not ready: %s", _first_line(error))
        return False
    return True


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
