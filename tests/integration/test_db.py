"""Engine, unit of work and readiness, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool
from sqlalchemy.schema import CreateSchema

from services.runtime.config import Settings
from services.runtime.db import (
    create_engine_for,
    database_ready,
    make_session_factory,
    transaction,
)
from tests.integration.conftest import MakeSettings
from tests.integration.fixtures.widgets import Widget, metadata

MakeEngine = Callable[[Settings], Engine]
UNREACHABLE_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/test"


def _with_tables(engine: Engine, settings: Settings) -> Engine:
    # What migrations do in production: the service's schema, then its tables.
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(CreateSchema(settings.service, if_not_exists=True))
    metadata.create_all(engine)
    return engine


@pytest.fixture
def factory(db_settings: Settings, make_engine: MakeEngine) -> sessionmaker[Session]:
    return make_session_factory(_with_tables(make_engine(db_settings), db_settings))


def _names(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(sa.select(Widget.name).order_by(Widget.name)))


def test_unit_of_work_commits(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        session.add_all([Widget(name="gear"), Widget(name="shaft")])

    assert _names(factory) == ["gear", "shaft"]


def test_unit_of_work_rolls_back_everything_on_exception(factory: sessionmaker[Session]) -> None:
    def fail_midway() -> None:
        with transaction(factory) as session:
            session.add(Widget(name="gear"))
            session.flush()  # the row is now written inside the open transaction
            session.add(Widget(name="shaft"))
            raise RuntimeError("failure mid-transaction")

    with pytest.raises(RuntimeError, match="mid-transaction"):
        fail_midway()

    assert _names(factory) == []


def test_unit_of_work_rolls_back_when_commit_fails(factory: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError), transaction(factory) as session:
        session.add_all([Widget(name="bolt"), Widget(name="gear"), Widget(name="gear")])

    assert _names(factory) == []
    # The failed unit left nothing locked or pending behind: the next one goes through.
    with transaction(factory) as session:
        session.add(Widget(name="gear"))
    assert _names(factory) == ["gear"]


def test_objects_stay_readable_after_the_session_closes(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        widget = Widget(name="gear", colour="red")
        session.add(widget)

    # expire_on_commit=False: loaded state survives commit and close, no lazy reload.
    assert sa.inspect(widget).detached
    assert widget.id is not None
    assert (widget.name, widget.colour) == ("gear", "red")


def test_savepoint_rolls_back_only_the_nested_work(factory: sessionmaker[Session]) -> None:
    def fail_nested(session: Session) -> None:
        with session.begin_nested():
            session.add(Widget(name="shaft"))
            session.flush()
            raise ValueError("nested failure")

    with transaction(factory) as session:
        session.add(Widget(name="gear"))
        with pytest.raises(ValueError, match="nested"):
            fail_nested(session)

    assert _names(factory) == ["gear"]


def test_rollback_undoes_a_released_savepoint(factory: sessionmaker[Session]) -> None:
    # sqlite3's legacy mode would let a savepoint opened first act as the transaction,
    # so releasing it committed "shaft" for good; db.py's own BEGIN prevents that.
    def fail_after_savepoint() -> None:
        with transaction(factory) as session:
            with session.begin_nested():
                session.add(Widget(name="shaft"))
            session.add(Widget(name="gear"))
            session.flush()
            raise RuntimeError("outer failure")

    with pytest.raises(RuntimeError, match="outer failure"):
        fail_after_savepoint()

    assert _names(factory) == []


def test_database_ready_when_reachable(db_settings: Settings, make_engine: MakeEngine) -> None:
    assert database_ready(make_engine(db_settings)) is True


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_database_not_ready_when_unreachable(
    kind: str, make_settings: MakeSettings, make_engine: MakeEngine, tmp_path: Path
) -> None:
    # SQLite cannot open a directory as its file; nothing listens on TCP port 1.
    url = f"sqlite:///{tmp_path}" if kind == "sqlite" else UNREACHABLE_POSTGRES
    engine = make_engine(make_settings(kind, url=url))

    started = time.monotonic()
    assert database_ready(engine) is False
    assert time.monotonic() - started < 3


def test_services_with_the_same_table_keep_separate_data(
    backend: str, make_settings: MakeSettings, make_engine: MakeEngine
) -> None:
    first, second = make_settings(backend), make_settings(backend)
    factories = {}
    for settings in (first, second):
        engine = _with_tables(make_engine(settings), settings)
        factories[settings.service] = make_session_factory(engine)

    with transaction(factories[first.service]) as session:
        session.add(Widget(name="first-only"))
    with transaction(factories[second.service]) as session:
        session.add(Widget(name="second-only"))

    assert _names(factories[first.service]) == ["first-only"]
    assert _names(factories[second.service]) == ["second-only"]


def test_postgres_tables_land_in_the_service_schema(
    postgres_settings: Settings, make_engine: MakeEngine, postgres_admin: Engine
) -> None:
    _with_tables(make_engine(postgres_settings), postgres_settings)

    tables = sa.inspect(postgres_admin).get_table_names(schema=postgres_settings.service)
    assert tables == ["widgets"]


def test_postgres_replaces_a_connection_the_server_dropped(
    postgres_settings: Settings, make_engine: MakeEngine, postgres_admin: Engine
) -> None:
    engine = make_engine(postgres_settings)
    with engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with postgres_admin.begin() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    # pool_pre_ping notices the dead pooled connection and opens a new one.
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid


def test_sqlite_connections_are_configured(
    sqlite_settings: Settings, make_engine: MakeEngine
) -> None:
    assert not sqlite_settings.data_dir.exists()
    engine = make_engine(sqlite_settings)

    with engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 2000  # connect_timeout_s=2
    assert (sqlite_settings.data_dir / f"{sqlite_settings.service}.db").is_file()


def test_postgres_engine_is_configured_from_settings(make_settings: MakeSettings) -> None:
    # No server needed: engines connect lazily. A bare postgresql:// means psycopg 3.
    settings = make_settings("postgres", url="postgresql://app@db.invalid:5432/mfg")
    engine = create_engine_for(settings)

    assert engine.dialect.driver == "psycopg"
    assert isinstance(engine.pool, QueuePool)
    assert engine.pool.size() == settings.database.pool_size
    assert engine.get_execution_options()["schema_translate_map"] == {None: settings.service}
    engine.dispose()


def test_unsupported_database_is_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(ValueError, match="unsupported backend"):
        create_engine_for(make_settings(url="mysql://app@db.invalid/mfg"))
