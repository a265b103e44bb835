"""Engine, sessions and schema management for the catalog (catalog layer).

One engine per process. Commands open one unit of work with `session_scope`; database
errors are translated to domain errors here, once.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from ddm.errors import AlreadyExists, DatabaseUnavailable, SchemaOutOfDate, TransientDbError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
UPGRADE_HINT = "run `ddm db upgrade`"


def create_db_engine(url: str) -> Engine:
    """Build the process's engine; for SQLite, create the parent folder and set pragmas.

    Raises:
        DatabaseUnavailable: the URL is malformed or names a driver that is not installed.
    """
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise DatabaseUnavailable(f"malformed database URL {_safe(url)!r}: {exc}") from None
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot create the database folder for {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # SQLite leaves foreign keys off by default, and concurrent writers (two `ddm extract`
    # runs, a worker and the CLI) need a busy timeout instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable>"


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, translate DB errors."""
    session = factory()
    try:
        yield session
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise AlreadyExists(f"conflicts with an existing row: {exc.orig}") from exc
    except OperationalError as exc:
        session.rollback()
        raise TransientDbError(f"database error: {exc.orig}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands relative to the code's migrations."""

    current: str | None
    head: str
    has_tables: bool

    @property
    def is_current(self) -> bool:
        return self.current == self.head

    @property
    def is_empty(self) -> bool:
        return self.current is None and not self.has_tables


def migrations_dir() -> Path:
    """The folder holding env.py and versions/, installed beside the ddm package."""
    import migrations

    # __path__ rather than __file__: an editable install may expose it as a namespace package.
    return Path(next(iter(migrations.__path__))).resolve()


def alembic_config(url: str):  # noqa: ANN201  (alembic.config.Config, imported lazily)
    """An Alembic config pointing at the shipped migrations and the given URL."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser treats % as interpolation; URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    heads = script.get_heads()
    assert len(heads) == 1, f"migrations must have one head, found {heads}"
    return heads[0]


def schema_state(engine: Engine) -> SchemaState:
    """Read the database's revision (None when never migrated).

    Raises:
        DatabaseUnavailable: the server cannot be reached or the file cannot be opened.
    """
    from alembic.migration import MigrationContext

    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
    except DBAPIError as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database {_safe(engine.url.render_as_string(False))}: "
            f"{_first_line(exc.orig)}"
        ) from None
    return SchemaState(current=current, head=head_revision(), has_tables=bool(tables))


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def verify_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema differs from this code's head.

    A database with no tables at all is initialised to head, as a first run expects.

    Raises:
        SchemaOutOfDate: the revision is behind (or ahead of) the code.
        DatabaseUnavailable: the database cannot be reached.
    """
    state = schema_state(engine)
    if state.is_current:
        return
    if state.is_empty:
        logger.info("initialising a new catalog at %s", _safe(str(engine.url)))
        upgrade(engine)
        return
    if state.current is not None and not _is_known(state.current):
        raise SchemaOutOfDate(
            f"database schema revision {state.current} is newer than this ddm "
            f"(head {state.head}); upgrade ddm"
        )
    raise SchemaOutOfDate(
        f"database schema is at revision {state.current or 'none'}, this ddm needs "
        f"{state.head}: {UPGRADE_HINT}"
    )


def _is_known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory(str(migrations_dir())).get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` inside one connection."""
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"cannot migrate the database: {_first_line(exc.orig)}") from None


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to `revision` ("base" removes every table)."""
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
