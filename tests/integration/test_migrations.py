"""Programmatic Alembic migrations with a test-only history, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import shutil
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from services.runtime import migrations
from services.runtime.config import Settings
from tests.integration.conftest import MakeSettings
from tests.integration.fixtures import widgets
from tests.integration.fixtures.widgets import MIGRATIONS, extended_metadata, metadata

MakeEngine = Callable[[Settings], Engine]


def _version_table(schema: str | None = None) -> sa.Table:
    return sa.Table("alembic_version", sa.MetaData(), sa.Column("version_num"), schema=schema)


def _version(engine: Engine) -> str | None:
    # Declared schema-less, so on PostgreSQL the engine's schema_translate_map reads the
    # service's own copy.
    with engine.connect() as connection:
        return connection.scalar(sa.select(_version_table().c.version_num))


def _tables(engine: Engine, settings: Settings) -> set[str]:
    schema = settings.service if engine.dialect.name == "postgresql" else None
    return set(sa.inspect(engine).get_table_names(schema=schema))


def test_upgrade_creates_the_tables_and_is_idempotent(
    db_settings: Settings, make_engine: MakeEngine
) -> None:
    migrations.upgrade(db_settings, MIGRATIONS, metadata)
    engine = make_engine(db_settings)
    assert _tables(engine, db_settings) == {"alembic_version", "widgets"}
    assert _version(engine) == "0002"
    with engine.begin() as connection:
        connection.execute(sa.insert(widgets.Widget), [{"name": "gear", "colour": "red"}])

    migrations.upgrade(db_settings, MIGRATIONS, metadata)

    assert _version(engine) == "0002"
    with engine.connect() as connection:
        assert connection.execute(sa.select(widgets.Widget.name)).scalars().all() == ["gear"]


def test_upgrade_to_a_revision_then_to_head(db_settings: Settings, make_engine: MakeEngine) -> None:
    migrations.upgrade(db_settings, MIGRATIONS, metadata, revision="0001")
    engine = make_engine(db_settings)
    assert _version(engine) == "0001"
    assert "colour" not in _columns_of(engine, db_settings)

    migrations.upgrade(db_settings, MIGRATIONS, metadata)

    assert _version(engine) == "0002"
    assert "colour" in _columns_of(engine, db_settings)


def _columns_of(engine: Engine, settings: Settings) -> set[str]:
    schema = settings.service if engine.dialect.name == "postgresql" else None
    return {c["name"] for c in sa.inspect(engine).get_columns("widgets", schema=schema)}


def test_postgres_services_keep_separate_histories(
    make_settings: MakeSettings, postgres_admin: Engine
) -> None:
    first, second = make_settings("postgres"), make_settings("postgres")
    migrations.upgrade(first, MIGRATIONS, metadata, revision="0001")
    migrations.upgrade(second, MIGRATIONS, metadata)

    inspector = sa.inspect(postgres_admin)
    for settings in (first, second):
        tables = set(inspector.get_table_names(schema=settings.service))
        assert tables == {"alembic_version", "widgets"}
    with postgres_admin.connect() as connection:
        versions = {
            settings.service: connection.scalar(
                sa.select(_version_table(settings.service).c.version_num)
            )
            for settings in (first, second)
        }
    assert versions == {first.service: "0001", second.service: "0002"}
    assert "colour" not in {
        c["name"] for c in inspector.get_columns("widgets", schema=first.service)
    }


def test_upgrade_warns_when_models_are_ahead_of_migrations(
    db_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=migrations.__name__):
        migrations.upgrade(db_settings, MIGRATIONS, metadata)
    assert not caplog.records

    with caplog.at_level(logging.WARNING, logger=migrations.__name__):
        migrations.upgrade(db_settings, MIGRATIONS, extended_metadata)
    assert "gadgets" in caplog.text
    assert "alembic_version" not in caplog.text


def test_autogenerate_writes_only_what_the_models_add(
    db_settings: Settings, make_settings: MakeSettings, tmp_path: Path
) -> None:
    # Another service's tables next door (its own schema on PostgreSQL) must not appear.
    neighbour = make_settings(
        "postgres" if db_settings.database.url else "sqlite", service=f"{db_settings.service}n"
    )
    migrations.upgrade(neighbour, MIGRATIONS, metadata)
    location = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, location, ignore=shutil.ignore_patterns("__pycache__"))
    env = location / "env.py"
    env.write_text(
        env.read_text().replace("import metadata", "import extended_metadata as metadata")
    )
    migrations.upgrade(db_settings, location, metadata)

    migrations.autogenerate(db_settings, location, extended_metadata, "add gadgets")

    (script,) = (location / "versions").glob("*_add_gadgets.py")
    text = script.read_text()
    assert "op.create_table('gadgets'" in text or 'op.create_table("gadgets"' in text
    assert "down_revision: str | Sequence[str] | None = '0002'" in text
    for unwanted in ("drop_table", "widgets", "alembic_version"):
        assert unwanted not in text.split("def downgrade")[0]


def test_env_refuses_to_run_outside_upgrade() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    with pytest.raises(RuntimeError, match=r"services\.runtime\.migrations"):
        command.upgrade(config, "head")


def test_cli_migrates_a_service(
    db_settings: Settings, make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI imports services.<name>.persistence; stand the fixture module in for it.
    monkeypatch.setitem(sys.modules, "services.quality.persistence", widgets)
    monkeypatch.setattr(migrations, "load_settings", lambda service: db_settings)

    assert migrations.main(["quality"]) == 0

    assert _version(make_engine(db_settings)) == "0002"


def test_cli_reports_a_persistence_module_without_migrations(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_settings: Settings
) -> None:
    incomplete = types.ModuleType("services.quality.persistence")
    incomplete.metadata = metadata  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "services.quality.persistence", incomplete)
    monkeypatch.setattr(migrations, "load_settings", lambda service: sqlite_settings)

    assert migrations.main(["quality"]) == 2
    assert "MIGRATIONS" in capsys.readouterr().err
