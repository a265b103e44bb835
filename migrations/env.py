"""Alembic environment: the URL comes from ddm's settings unless the caller supplies one."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from ddm.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    # Plain `alembic upgrade head` from a shell: read the same settings as the CLI.
    from ddm.config import load_settings

    return load_settings().db_url


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Migrations are frozen history: render our column types as plain SQLAlchemy types
    # so that no script imports ddm.
    if type_ == "type" and type(obj).__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_item=_render_item,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=True,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    # Plain `alembic upgrade` from a shell: take the same lock as ddm's own migrations
    # (ddm.db.upgrade, which passes its locked connection in), for the same race.
    from ddm.db import broken_references, check_foreign_keys, take_migration_lock

    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.begin() as connection:
        take_migration_lock(connection)
        before = broken_references(connection)
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        check_foreign_keys(connection, before)
    engine.dispose()  # its one connection, whose SQLite foreign keys were off, goes with it


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
