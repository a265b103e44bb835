"""`ddm db`, `ddm config show`, `ddm datasets`, and the exit codes of setup failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from ddm.db import create_db_engine, head_revision, upgrade

EXIT_DOMAIN, EXIT_USAGE, EXIT_SETUP = 1, 2, 3


def test_upgrade_then_current_on_a_fresh_sqlite_file(run_ddm, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'catalog.sqlite3'}"
    before = run_ddm("db", "current", "--json", env={"DDM_DATABASE_URL": url})
    assert before.exit_code == 0, before.stderr
    assert json.loads(before.stdout)["current"] is None

    result = run_ddm("db", "upgrade", env={"DDM_DATABASE_URL": url})
    assert result.exit_code == 0, result.stderr
    assert f"catalog at revision {head_revision()}" in result.stderr

    current = run_ddm("db", "current", env={"DDM_DATABASE_URL": url})
    assert current.exit_code == 0, current.stderr
    assert current.stdout.strip() == f"{head_revision()} (head)"


def test_upgrade_and_current_on_each_dialect(run_ddm, blank_db_url: str) -> None:
    assert run_ddm("db", "upgrade", env={"DDM_DATABASE_URL": blank_db_url}).exit_code == 0
    result = run_ddm("db", "current", "--json", env={"DDM_DATABASE_URL": blank_db_url})
    assert json.loads(result.stdout) | {"database_url": None} == {
        "database_url": None,
        "current": head_revision(),
        "head": head_revision(),
        "up_to_date": True,
    }


def test_datasets_on_an_empty_catalog(run_ddm, db_url: str) -> None:
    env = {"DDM_DATABASE_URL": db_url}
    as_json = run_ddm("datasets", "--json", env=env)
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == []
    as_table = run_ddm("datasets", env=env)
    assert as_table.exit_code == 0, as_table.stderr
    assert "no datasets yet" in as_table.stdout


def test_a_first_command_initialises_an_empty_default_catalog(run_ddm, ddm_env) -> None:
    result = run_ddm("datasets", "--json")
    assert result.exit_code == 0, result.stderr
    assert (Path(ddm_env["DDM_HOME"]) / "ddm.sqlite3").exists()


def test_unversioned_tables_count_as_a_stale_schema(run_ddm, blank_db_url: str) -> None:
    engine = create_db_engine(blank_db_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    engine.dispose()
    result = run_ddm("datasets", env={"DDM_DATABASE_URL": blank_db_url})
    assert result.exit_code == EXIT_SETUP
    assert result.stderr.strip().splitlines() == [
        f"error: database schema is at revision none, this ddm needs {head_revision()}: "
        "run `ddm db upgrade`"
    ]


def _stamp_an_unknown_revision(url: str) -> None:
    """A catalog at head, then marked with a revision from a newer ddm than this one."""
    engine = create_db_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    engine.dispose()


def test_an_unknown_schema_revision_is_refused_by_every_catalog_command(
    run_ddm, blank_db_url: str
) -> None:
    _stamp_an_unknown_revision(blank_db_url)
    for command in (["datasets"], ["ingest", "x"], ["videos"], ["jobs", "list"], ["cache", "gc"]):
        result = run_ddm(*command, env={"DDM_DATABASE_URL": blank_db_url})
        assert result.exit_code == EXIT_SETUP, (command, result.stderr)
        assert "ffffffffffff" in result.stderr
        assert "Traceback" not in result.stderr


def test_malformed_database_url(run_ddm) -> None:
    result = run_ddm("datasets", env={"DDM_DATABASE_URL": "not a url"})
    assert result.exit_code == EXIT_SETUP
    assert result.stderr.startswith("error: malformed database URL")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_database_url_without_and_with_debug(run_ddm, tmp_path: Path) -> None:
    url = f"postgresql://ddm:secret@/ddm?host={tmp_path}&port=1"
    result = run_ddm("datasets", env={"DDM_DATABASE_URL": url})
    assert result.exit_code == EXIT_SETUP
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the database")
    assert "secret" not in result.stderr

    debug = run_ddm("--debug", "datasets", env={"DDM_DATABASE_URL": url})
    assert debug.exit_code == EXIT_SETUP
    assert "Traceback" in debug.stderr


def test_sqlite_file_that_cannot_be_created(run_ddm, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = run_ddm("datasets", env={"DDM_DATABASE_URL": f"sqlite:///{blocker}/ddm.sqlite3"})
    assert result.exit_code == EXIT_SETUP
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_show_masks_passwords(run_ddm) -> None:
    env = {
        "DDM_DATABASE_URL": "postgresql://ddm:hunter2@db.example/ddm",
        "DDM_BROKER_URL": "redis://:brokerpw@localhost:6379/0",
    }
    result = run_ddm("config", "show", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["database_url"] == "postgresql+psycopg://ddm:***@db.example/ddm"
    assert shown["broker_url"] == "redis://:***@localhost:6379/0"
    table = run_ddm("config", "show", env=env)
    assert "hunter2" not in table.stdout and "brokerpw" not in table.stdout


def test_usage_errors_exit_2(run_ddm) -> None:
    assert run_ddm("no-such-command").exit_code == EXIT_USAGE
    assert run_ddm("datasets", "--no-such-flag").exit_code == EXIT_USAGE


def test_report_on_an_unknown_dataset_is_one_line(run_ddm) -> None:
    result = run_ddm("report", "--eval", "ff")
    assert result.exit_code == EXIT_DOMAIN
    assert result.stderr.strip() == (
        "error: no dataset named 'ff' (known: none yet); run `ddm ingest PATH` first"
    )


def test_help_lists_every_command_without_importing_torch() -> None:
    expected = [
        "ingest",
        "extract",
        "train",
        "report",
        "stats",
        "predict",
        "db",
        "datasets",
        "videos",
        "jobs",
        "runs",
        "cache",
        "weights",
        "worker",
        "demo",
        "config",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "--help"], capture_output=True, text=True, check=True
    )
    listed = result.stdout.split("Commands:")[1].split()
    assert set(expected) <= set(listed)
    probe = (
        # cv2 too: the CLI reads `--format` choices from the ingest registry at import time,
        # which must stay clear of the probe.
        "import sys, cli.main; heavy = {'torch', 'sqlalchemy', 'celery', 'cv2'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "[]"


def test_a_schema_behind_the_code_is_refused_until_upgraded(run_ddm, blank_db_url: str) -> None:
    from alembic.script import ScriptDirectory

    from ddm.db import migrations_dir

    previous = ScriptDirectory(str(migrations_dir())).get_revision(head_revision()).down_revision
    assert previous is not None, "needs at least two migrations"
    engine = create_db_engine(blank_db_url)
    upgrade(engine, previous)
    engine.dispose()
    env = {"DDM_DATABASE_URL": blank_db_url}
    for command in (["datasets"], ["videos", "--json"], ["ingest", "/nowhere"]):
        result = run_ddm(*command, env=env)
        assert result.exit_code == EXIT_SETUP, (command, result.stderr)
        assert result.stderr.strip() == (
            f"error: database schema is at revision {previous}, this ddm needs "
            f"{head_revision()}: run `ddm db upgrade`"
        )
    assert run_ddm("db", "upgrade", env=env).exit_code == 0
    assert run_ddm("datasets", "--json", env=env).exit_code == 0


def test_config_show_masks_passwords_in_query_strings(run_ddm, tmp_path: Path) -> None:
    env = {
        "DDM_DATABASE_URL": f"postgresql://ddm@/ddm?host={tmp_path}&password=hunter2",
        "DDM_BROKER_URL": "rediss://localhost:6379/0?password=brokerpw&ssl_cert_reqs=none",
    }
    result = run_ddm("config", "show", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["database_url"].endswith("&password=***")
    assert shown["broker_url"] == "rediss://localhost:6379/0?password=***&ssl_cert_reqs=none"
    current = run_ddm("db", "current", "--json", env=env)
    assert "hunter2" not in current.stdout + current.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ddm@/ddm?host={tmp}&port=1&password=hunter2",  # unreachable
        "postgresql://ddm:hunter2@/ddm?host={tmp}&port=abc",  # malformed
        "postgresql://ddm@/ddm?host={tmp}&port=abc&password=hunter2",  # malformed
    ],
)
def test_connection_errors_mask_every_credential(run_ddm, tmp_path: Path, url: str) -> None:
    result = run_ddm("datasets", env={"DDM_DATABASE_URL": url.format(tmp=tmp_path)})
    assert result.exit_code == EXIT_SETUP
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "hunter2" not in result.stderr and "***" in result.stderr


def test_an_unsupported_database_scheme_is_a_setup_error(run_ddm) -> None:
    result = run_ddm("datasets", env={"DDM_DATABASE_URL": "mysql://ddm:hunter2@db/ddm"})
    assert result.exit_code == EXIT_SETUP, result.stderr
    assert result.stderr.strip() == (
        "error: unsupported database URL mysql://ddm:***@db/ddm: "
        "ddm keeps its catalog in PostgreSQL (postgresql://...) or SQLite (sqlite:///PATH)"
    )


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_catalog_is_refused(run_ddm, url: str) -> None:
    result = run_ddm("datasets", env={"DDM_DATABASE_URL": url})
    assert result.exit_code == EXIT_SETUP, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "in-memory" in lines[0] and "sqlite:///PATH" in lines[0]


def test_upgrading_a_catalog_at_an_unknown_revision_is_a_setup_error(
    run_ddm, blank_db_url: str
) -> None:
    _stamp_an_unknown_revision(blank_db_url)
    result = run_ddm("db", "upgrade", env={"DDM_DATABASE_URL": blank_db_url})
    assert result.exit_code == EXIT_SETUP, result.stderr
    assert result.stderr.strip() == (
        f"error: database schema revision ffffffffffff is newer than this ddm "
        f"(head {head_revision()}); upgrade ddm"
    )


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_ddm_config_that_is_not_a_file_exits_3(run_ddm, tmp_path: Path, kind: str) -> None:
    target = tmp_path / ("absent.toml" if kind == "missing" else "a-folder")
    if kind == "folder":
        target.mkdir()
    result = run_ddm("config", "show", env={"DDM_CONFIG": str(target)})
    assert result.exit_code == EXIT_SETUP, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(target) in result.stderr
