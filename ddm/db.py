"""Engine, sessions and schema management for the catalog (catalog layer).

One engine per process. Commands open one unit of work with `session_scope`; database
errors are translated to domain errors here, once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from ddm.config import mask_url, redact
from ddm.errors import (
    AlreadyExists,
    DatabaseUnavailable,
    SchemaOutOfDate,
    SetupError,
    TransientDbError,
)

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
UPGRADE_HINT = "run `ddm db upgrade`"
SUPPORTED_BACKENDS = ("postgresql", "sqlite")
# Any constant works: advisory lock ids are scoped to one database. Taken by every process
# that migrates, so two first uses of an empty database cannot create the tables twice.
MIGRATION_LOCK_ID = 0x64646D5F6D6967  # "ddm_mig"


def create_db_engine(url: str) -> Engine:
    """Build the process's engine; for SQLite, create the parent folder and set pragmas.

    An existing SQLite file that this process may not write (or whose folder it may not
    write) is opened read-only, so that listing a read-only catalog works.

    Raises:
        DatabaseUnavailable: the URL is malformed, names a database ddm does not support
            or an in-memory one, or a driver that is not installed.
    """
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
            raise DatabaseUnavailable(
                f"unsupported database URL {mask_url(url)}: ddm keeps its catalog in "
                "PostgreSQL (postgresql://...) or SQLite (sqlite:///PATH)"
            )
        if parsed.get_backend_name() == "sqlite":
            parsed = _sqlite_file_url(parsed, url)
        engine = create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise DatabaseUnavailable(
            f"malformed database URL {mask_url(url)}: {redact(str(exc), url)}"
        ) from None
    except OSError as exc:
        raise DatabaseUnavailable(
            f"cannot create the database folder for {mask_url(url)}: {redact(str(exc), url)}"
        ) from None
    if engine.dialect.name == "sqlite":
        read_only = engine.url.query.get("mode") == "ro"
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, read_only=read_only))
    return engine


def _sqlite_file_url(parsed: URL, url: str) -> URL:
    """Refuse an in-memory catalog, create a new file's folder, open an unwritable one read-only."""
    path = _sqlite_path(parsed)
    if path is None:
        raise DatabaseUnavailable(
            f"{mask_url(url)} is an in-memory catalog, which loses everything when the command "
            "ends; use a file (sqlite:///PATH), or leave DDM_DATABASE_URL unset for the default"
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return parsed
    if _is_uri(parsed):
        return parsed  # the user chose SQLite's open flags already
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return parsed
    flags = {"mode": "ro", "uri": "true"}
    if not os.access(path.parent, os.W_OK):
        # A WAL reader needs the -shm file beside the catalog, which a read-only folder
        # cannot hold. Nobody can commit to the file either (every journal mode writes a
        # file there), so SQLite may read it as immutable, without those files.
        flags["immutable"] = "1"
    return parsed.set(database=f"file:{quote(str(path))}", query={**parsed.query, **flags})


def shown_url(url: URL) -> str:
    """The engine's URL as messages show it: credentials masked, a SQLite catalog by its path
    (not the `file:` form a read-only open uses)."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{_sqlite_path(url) or ':memory:'}"
    return mask_url(url.render_as_string(hide_password=False))


def _sqlite_path(parsed: URL) -> Path | None:
    """The catalog file a SQLite URL names, or None for an in-memory database."""
    database = parsed.database or ""
    if _is_uri(parsed) and database.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        database = unquote(urlsplit(database).path)
    if database in ("", ":memory:"):
        return None
    return Path(database).expanduser()


def _is_uri(parsed: URL) -> bool:
    return str(parsed.query.get("uri", "")).lower() in ("true", "1")


def _sqlite_pragmas(
    dbapi_connection: sqlite3.Connection, _record: object, *, read_only: bool
) -> None:
    # SQLite leaves foreign keys off by default, and concurrent writers (two `ddm extract`
    # runs, a worker and the CLI) need a busy timeout instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    if not read_only:  # switching the journal mode is a write
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


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
        if _is_read_only_error(exc):
            raise DatabaseUnavailable(
                f"the catalog {shown_url(session.get_bind().url)} is read-only and this "
                "command writes to it; run it where the catalog is writable"
            ) from exc
        raise TransientDbError(f"database error: {exc.orig}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _is_read_only_error(exc: DBAPIError) -> bool:
    # SQLite opened read-only (see _sqlite_file_url), or a PostgreSQL standby.
    return (
        getattr(exc.orig, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY
        or getattr(exc.orig, "sqlstate", None) == "25006"  # read_only_sql_transaction
    )


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


@functools.cache
def head_revision() -> str:
    """The newest migration this code knows.

    Read from the migration files' `revision` and `down_revision` lines, not through
    Alembic: importing Alembic cost every command about a second (a test checks this
    against Alembic's own answer).
    """
    revisions: dict[str, str | None] = {}
    for path in (migrations_dir() / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = _REVISION.search(text)
        if revision is not None:
            down = _DOWN_REVISION.search(text)
            revisions[revision.group(1)] = down.group(1) if down else None
    heads = sorted(set(revisions) - set(revisions.values()))
    assert len(heads) == 1, f"migrations must have one head, found {heads}"
    return heads[0]


# `revision: str = "0010"` and `down_revision: str | None = "0009"`, as every migration
# file (script.py.mako) writes them.
_REVISION = re.compile(r'^revision(?::[^=]*)?=\s*["\']([^"\']+)["\']', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision(?::[^=]*)?=\s*["\']([^"\']+)["\']', re.MULTILINE)


def schema_state(engine: Engine) -> SchemaState:
    """Read the database's revision (None when never migrated).

    Raises:
        DatabaseUnavailable: the server cannot be reached or the file cannot be opened.
    """
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            current = _stored_revision(connection) if "alembic_version" in tables else None
            tables.discard("alembic_version")
    except DBAPIError as exc:
        url = engine.url.render_as_string(hide_password=False)
        raise DatabaseUnavailable(
            f"cannot reach the database {shown_url(engine.url)}: "
            f"{redact(_first_line(exc.orig), url)}"
        ) from None
    return SchemaState(current=current, head=head_revision(), has_tables=bool(tables))


def _stored_revision(connection: Connection) -> str | None:
    """The revision in Alembic's table (which exists), read without importing Alembic: that
    import cost every command about a second. Anything but one row goes to Alembic, whose
    error explains it."""
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return str(rows[0][0]) if len(rows) == 1 else _current_revision(connection)


def _current_revision(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _first_line(exc: BaseException | None) -> str:
    message = str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def verify_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema differs from this code's head.

    A database with no tables at all is initialised to head, as a first run expects;
    processes that find it empty at the same moment take turns (see `upgrade`).

    Raises:
        SchemaOutOfDate: the revision is behind (or ahead of) the code.
        DatabaseUnavailable: the database cannot be reached.
    """
    state = schema_state(engine)
    if state.is_current:
        return
    if state.is_empty:
        logger.info("initialising a new catalog at %s", shown_url(engine.url))
        upgrade(engine)
        return
    _require_known(state.current)
    raise SchemaOutOfDate(
        f"database schema is at revision {state.current or 'none'}, this ddm needs "
        f"{state.head}: {UPGRADE_HINT}"
    )


def _require_known(revision: str | None) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if revision is None:
        return
    try:
        known = ScriptDirectory(str(migrations_dir())).get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise SchemaOutOfDate(
            f"database schema revision {revision} is newer than this ddm "
            f"(head {head_revision()}); upgrade ddm"
        )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision`, in one transaction that holds the migration lock.

    Another process migrating the same database meanwhile is waited for; this one then
    finds the work done and applies nothing.

    Raises:
        SchemaOutOfDate: the database is at a revision this code does not know.
        SetupError: the target revision is unknown or the migration fails.
    """
    _migrate(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to `revision` ("base" removes every table)."""
    _migrate(engine, "downgrade", revision)


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            try:
                with connection.begin():
                    take_migration_lock(connection)
                    _require_known(_current_revision(connection))
                    before = broken_references(connection)
                    config.attributes["connection"] = connection
                    getattr(command, direction)(config, revision)
                    check_foreign_keys(connection, before)
            finally:
                enforce_foreign_keys(connection)
    except DBAPIError as exc:
        url = engine.url.render_as_string(hide_password=False)
        raise DatabaseUnavailable(
            f"cannot migrate the database: {redact(_first_line(exc.orig), url)}"
        ) from None
    except CommandError as exc:
        raise SetupError(f"cannot migrate the database: {_first_line(exc)}") from None


def take_migration_lock(connection: Connection) -> None:
    """Wait for, then hold until the transaction ends, the right to migrate this database.

    Without it, processes that all find a new database empty each create the tables, and
    all but one fail (duplicate key in pg_type, or "table already exists").
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    elif connection.dialect.name == "sqlite":
        # Batch mode rebuilds a table (copy, drop the old one, rename): with foreign keys
        # on, the drop deleted every row that refers to it (ON DELETE CASCADE: 0010 wiped
        # the caches, members and predictions of every video). They are off for the
        # migration (the pragma is ignored inside a transaction, so before BEGIN), checked
        # at its end (`check_foreign_keys`) and back on after it (`enforce_foreign_keys`).
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        # pysqlite opens no transaction for DDL on its own, so each CREATE would commit at
        # once; BEGIN IMMEDIATE takes the write lock now and makes the migration atomic.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def broken_references(connection: Connection) -> int:
    """How many rows refer to no row (SQLite; 0 elsewhere, where they are always checked)."""
    if connection.dialect.name != "sqlite":
        return 0
    return len(connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall())


def check_foreign_keys(connection: Connection, before: int = 0) -> None:
    """Refuse a migration that left more rows referring to no row than the `before` it
    found: SQLite checks none while its foreign keys are off (`take_migration_lock`).
    Raised inside the migration's transaction, it rolls the migration back.

    Raises:
        SetupError: such rows were added.
    """
    after = broken_references(connection)
    if after > before:
        raise SetupError(
            f"cannot migrate the database: it would leave {after - before} more rows "
            "referring to missing rows (`PRAGMA foreign_key_check` lists them); nothing "
            "was changed"
        )


def enforce_foreign_keys(connection: Connection) -> None:
    """Foreign keys back on for a SQLite connection after its migration (as every
    connection of ours starts: `_sqlite_pragmas`)."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
