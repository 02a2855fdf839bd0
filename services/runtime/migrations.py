"""Schema migrations with Alembic, driven from code: one migration history per service.

Each service keeps ``services/<name>/migrations/`` (``env.py``, ``script.py.mako`` and
``versions/``) and a ``services/<name>/persistence.py`` exposing ``metadata`` and
``MIGRATIONS``. Migrating is a one-shot deployment step, never done by a starting
server, so replicas don't race each other and a failed migration stops the rollout::

    python -m services.runtime.migrations scheduling|quality|maintenance|all
    python -m services.runtime.migrations scheduling --autogenerate "add orders"

On PostgreSQL a service's tables *and* its ``alembic_version`` table live in the schema
named after the service, so the three histories can share one database. On SQLite each
service has its own file anyway.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateSchema

from services.runtime.config import ConfigError, Settings, load_settings
from services.runtime.db import create_engine_for

logger = logging.getLogger(__name__)

SERVICES = ("scheduling", "quality", "maintenance")
VERSION_TABLE = "alembic_version"
# Keys of Config.attributes through which upgrade() hands its state to run_env().
_CONNECTION = "connection"
_SCHEMA = "schema"


def upgrade(
    settings: Settings, script_location: Path, metadata: MetaData, revision: str = "head"
) -> None:
    """Bring the service's database to ``revision``, creating its schema if needed.

    After an upgrade to head, differences between ``metadata`` and the database are
    logged as a warning: a model changed without a migration.
    """
    with _alembic_config(settings, script_location) as config:
        command.upgrade(config, revision)
        if revision == "head":
            _warn_on_drift(config.attributes[_CONNECTION], config.attributes[_SCHEMA], metadata)


def autogenerate(
    settings: Settings, script_location: Path, metadata: MetaData, message: str
) -> None:
    """Write a new revision from the difference between ``metadata`` and the database.

    The database must be at head first; review the generated file before committing it.
    """
    with _alembic_config(settings, script_location) as config:
        command.revision(config, message=message, autogenerate=True)


def run_env(metadata: MetaData) -> None:
    """The whole body of a service's ``migrations/env.py``: ``run_env(metadata)``."""
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported")
    connection = context.config.attributes.get(_CONNECTION)
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "no database connection: run migrations through services.runtime.migrations "
            "(python -m services.runtime.migrations <service>), not the alembic command"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        **_context_options(connection, context.config.attributes.get(_SCHEMA)),
    )
    with context.begin_transaction():
        context.run_migrations()


@contextmanager
def _alembic_config(settings: Settings, script_location: Path) -> Iterator[Config]:
    """An in-code Alembic config holding one connection, inside one transaction."""
    engine = _migration_engine(settings)
    try:
        # One transaction for everything: PostgreSQL and (with db.py's BEGIN handling)
        # SQLite both roll a failed migration back entirely.
        with engine.begin() as connection:
            schema = _enter_service_schema(connection, settings.database_schema)
            config = Config()
            # ConfigParser interpolates "%"; a path must not be mistaken for a reference.
            config.set_main_option("script_location", str(script_location).replace("%", "%%"))
            config.attributes[_CONNECTION] = connection
            config.attributes[_SCHEMA] = schema
            yield config
    finally:
        engine.dispose()


def _migration_engine(settings: Settings) -> Engine:
    engine = create_engine_for(settings)
    if engine.dialect.name == "sqlite":
        # Batch migrations rebuild a table by copy, drop and rename; with foreign keys
        # enforced, the drop would cascade into (or be refused by) referencing rows.
        # Registered after db.py's listener, so it runs later and wins.
        @event.listens_for(engine, "connect")
        def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys=OFF")
            finally:
                cursor.close()

    return engine


def _enter_service_schema(connection: Connection, service: str) -> str | None:
    """On PostgreSQL, create the service's schema and make it the connection's default."""
    if connection.dialect.name != "postgresql":
        return None
    connection.execute(CreateSchema(service, if_not_exists=True))
    # Alembic emits some operations (add_column, alter_column, op.execute of raw SQL)
    # with bare table names, which schema_translate_map does not reach: the search path
    # sends those to the service's schema too. Only that schema, so a migration cannot
    # touch another service's tables by accident.
    quoted = connection.dialect.identifier_preparer.quote_schema(service)
    connection.exec_driver_sql(f"SET search_path TO {quoted}")
    # Autogenerate compares schema-less tables with the dialect's default schema, read
    # once at first connect; point it at the service's schema (Alembic's multi-tenant
    # recipe). This engine exists only for the migration run.
    connection.dialect.default_schema_name = service
    return service


def _context_options(connection: Connection, schema: str | None) -> dict[str, Any]:
    return {
        "version_table": VERSION_TABLE,
        "version_table_schema": schema,
        # SQLite can't ALTER most things; batch mode rebuilds the table instead.
        "render_as_batch": connection.dialect.name == "sqlite",
        # Look only at the service's own (default) schema: including every schema would
        # offer to drop the other services' tables.
        "include_schemas": False,
        "include_name": _not_version_table,
        "compare_type": True,
    }


def _not_version_table(name: str | None, type_: str, _parents: Any) -> bool:
    # The version table sits in the default schema but is named with an explicit schema,
    # so Alembic does not recognise it there and would otherwise offer to drop it.
    return not (type_ == "table" and name == VERSION_TABLE)


def _warn_on_drift(connection: Connection, schema: str | None, metadata: MetaData) -> None:
    """Log when the models describe tables the migrations at head don't produce."""
    options = {"target_metadata": metadata, **_context_options(connection, schema)}
    diffs = compare_metadata(MigrationContext.configure(connection, opts=options), metadata)
    if diffs:
        logger.warning(
            "models and migrations disagree after upgrading to head; "
            "a migration is probably missing: %s",
            diffs,
        )


def services_with_tables() -> tuple[str, ...]:
    """The services that keep tables (a ``persistence`` module) and so need migrating."""
    return tuple(s for s in SERVICES if importlib.util.find_spec(f"services.{s}.persistence"))


def _persistence(service: str) -> tuple[MetaData, Path]:
    module = importlib.import_module(f"services.{service}.persistence")
    metadata = getattr(module, "metadata", None)
    location = getattr(module, "MIGRATIONS", None)
    if not isinstance(metadata, MetaData) or not isinstance(location, Path):
        raise TypeError(
            f"services.{service}.persistence must expose metadata (MetaData) and MIGRATIONS (Path)"
        )
    return metadata, location


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.runtime.migrations",
        description="Migrate a service's database (one-shot; servers never migrate on start).",
    )
    parser.add_argument("service", choices=[*SERVICES, "all"])
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    parser.add_argument(
        "--autogenerate",
        metavar="MESSAGE",
        help="write a new revision from the model/database difference instead of upgrading",
    )
    args = parser.parse_args(argv)
    if args.autogenerate and args.service == "all":
        parser.error("--autogenerate works on one service at a time")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The drift check would otherwise announce every autogenerate plugin it loads.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    for service in services_with_tables() if args.service == "all" else (args.service,):
        try:
            settings = load_settings(service)
            metadata, location = _persistence(service)
        except (ConfigError, ImportError, TypeError) as error:
            print(f"{service}: {error}", file=sys.stderr)
            return 2
        try:
            if args.autogenerate:
                autogenerate(settings, location, metadata, args.autogenerate)
            else:
                upgrade(settings, location, metadata, args.revision)
        except (CommandError, SQLAlchemyError, OSError):
            logger.exception("%s: migration failed", service)
            return 1
        print(f"{service}: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
