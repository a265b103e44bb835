"""The Alembic chain: one head, up and down on both dialects, and no drift from the models."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from ddm.catalog.models import Base
from ddm.db import create_db_engine, downgrade, head_revision, migrations_dir, schema_state, upgrade
from ddm.errors import SetupError

EXPECTED_TABLES = {
    "datasets",
    "videos",
    "feature_caches",
    "jobs",
    "runs",
    "run_epochs",
    "evaluations",
    "predictions",
    "prediction_windows",
}


def test_single_head() -> None:
    assert len(ScriptDirectory(str(migrations_dir())).get_heads()) == 1


def test_the_head_read_from_the_files_is_alembics() -> None:
    assert [head_revision()] == ScriptDirectory(str(migrations_dir())).get_heads()


def test_a_schema_check_does_not_import_alembic(blank_db_url: str) -> None:
    # Alembic's import cost every command about a second; only migrating needs it.
    engine = create_db_engine(blank_db_url)
    upgrade(engine)
    engine.dispose()
    check = (
        "import sys; from ddm.db import create_db_engine, verify_schema; "
        f"verify_schema(create_db_engine({blank_db_url!r})); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_migrations_do_not_import_the_live_models() -> None:
    for script in (migrations_dir() / "versions").glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import)\s+(\S+)", script.read_text(), re.M)
        assert not [name for name in imports if name.split(".")[0] == "ddm"], script.name


def test_upgrade_then_downgrade_to_base(blank_db_url: str) -> None:
    engine = create_db_engine(blank_db_url)
    upgrade(engine)
    assert schema_state(engine).current == head_revision()
    assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert schema_state(engine).current is None
    engine.dispose()


def test_every_step_down_and_up_again(blank_db_url: str) -> None:
    engine = create_db_engine(blank_db_url)
    script = ScriptDirectory(str(migrations_dir()))
    revisions = [rev.revision for rev in script.walk_revisions("base", "heads")]  # newest first
    upgrade(engine)
    for revision in revisions:
        previous = script.get_revision(revision).down_revision or "base"
        downgrade(engine, previous)
        assert schema_state(engine).current == (None if previous == "base" else previous)
    upgrade(engine)
    assert schema_state(engine).is_current
    engine.dispose()


def test_migrated_schema_matches_the_models(blank_db_url: str) -> None:
    engine = create_db_engine(blank_db_url)
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_0012_adds_and_removes_the_per_window_predictions(blank_db_url: str) -> None:
    engine = create_db_engine(blank_db_url)
    upgrade(engine, "0011")
    assert "prediction_windows" not in inspect(engine).get_table_names()
    upgrade(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("prediction_windows")}
    assert {"evaluation_id", "video_id", "window_seconds", "stride_seconds", "index"} <= columns
    assert {"start_seconds", "end_seconds", "score", "logit", "fallback_frames"} <= columns
    unique = inspect(engine).get_unique_constraints("prediction_windows")
    assert [u["name"] for u in unique] == ["uq_prediction_windows_key"]
    downgrade(engine, "0011")
    assert "prediction_windows" not in inspect(engine).get_table_names()
    assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES - {"prediction_windows"}
    assert schema_state(engine).current == "0011"
    engine.dispose()


def _fill_at_0013(engine) -> None:
    """Three videos, one of them never scored, and four evaluations stored through plain
    SQL (the schema of 0013): the newest evaluation (id 4) scored one video, and was
    written before the older ones."""
    statements = [
        "INSERT INTO datasets (id, name, format, root_path, notes) VALUES (1, 'd', 'folder', "
        "'/d', '{}')",
        "INSERT INTO runs (id, name, datasets, config, status) VALUES (1, 'r', '[]', '{}', "
        "'succeeded')",
        *(
            f"INSERT INTO videos (id, dataset_id, path, probe_status, is_present) "
            f"VALUES ({v}, 1, 'v{v}.mp4', 'ok', true)"
            for v in (1, 2, 3)
        ),
        "INSERT INTO feature_caches (video_id, fingerprint, is_valid) VALUES (1, 'f', true)",
        *(
            f"INSERT INTO evaluations (id, run_id, dataset_id, metrics) VALUES ({e}, 1, 1, '{{}}')"
            for e in (4, 1, 2, 3)
        ),
    ]
    # (evaluation, video, score), in the order written.
    predictions = [(4, 2, 0.75), (1, 1, 0.5), (1, 2, 0.25), (2, 1, 0.125), (3, 2, 0.875)]
    statements += [
        f"INSERT INTO predictions (evaluation_id, video_id, score, predicted_label) "
        f"VALUES ({e}, {v}, {s}, 'real')"
        for e, v, s in predictions
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_0014_fills_each_videos_latest_score_from_its_predictions(blank_db_url: str) -> None:
    engine = create_db_engine(blank_db_url)
    upgrade(engine, "0013")
    _fill_at_0013(engine)
    upgrade(engine)
    latest = text("SELECT id, latest_score, latest_evaluation_id FROM videos ORDER BY id")
    counts = text(
        "SELECT (SELECT count(*) FROM predictions), (SELECT count(*) FROM feature_caches)"
    )
    with engine.connect() as connection:
        assert [tuple(row) for row in connection.execute(latest)] == [
            (1, 0.125, 2),
            (2, 0.75, 4),
            (3, None, None),
        ]
        assert tuple(connection.execute(counts).one()) == (5, 1)  # nothing else touched
    indexes = {index["name"] for index in inspect(engine).get_indexes("videos")}
    assert {"ix_videos_latest_score_id", "ix_videos_latest_score_desc_id"} <= indexes
    downgrade(engine, "0013")
    columns = {column["name"] for column in inspect(engine).get_columns("videos")}
    assert not {"latest_score", "latest_evaluation_id"} & columns
    with engine.connect() as connection:
        assert tuple(connection.execute(counts).one()) == (5, 1)
    engine.dispose()


def _fill_at_0009(engine) -> None:  # noqa: ANN001
    """A video with a rewrite (its original), a feature cache, a run member and a stored
    prediction: every table that refers to `videos`, written through plain SQL (0009)."""
    statements = [
        "INSERT INTO datasets (id, name, format, root_path, notes) VALUES (1, 'd', 'folder', "
        "'/d', '{}')",
        "INSERT INTO runs (id, name, datasets, config, status) VALUES (1, 'r', '[]', '{}', "
        "'succeeded')",
        "INSERT INTO videos (id, dataset_id, path, probe_status, is_present) "
        "VALUES (1, 1, 'v1.mp4', 'ok', true)",
        "INSERT INTO videos (id, dataset_id, path, probe_status, is_present, original_video_id) "
        "VALUES (2, 1, 'v2.mp4', 'ok', true, 1)",
        "INSERT INTO feature_caches (video_id, fingerprint, is_valid) VALUES (1, 'f', true)",
        "INSERT INTO run_members (run_id, video_id, role, label, cache_path, cache_checksum) "
        "VALUES (1, 1, 'train', 'real', 'c', 'x')",
        "INSERT INTO evaluations (id, run_id, dataset_id, metrics) VALUES (1, 1, 1, '{}')",
        "INSERT INTO predictions (evaluation_id, video_id, score, predicted_label) "
        "VALUES (1, 2, 0.5, 'real')",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


_ROWS_REFERRING_TO_VIDEOS = text(
    "SELECT (SELECT count(*) FROM videos), (SELECT count(*) FROM feature_caches), "
    "(SELECT count(*) FROM run_members), (SELECT count(*) FROM predictions), "
    "(SELECT original_video_id FROM videos WHERE id = 2)"
)


def test_rebuilding_a_table_loses_no_row_that_refers_to_it(blank_db_url: str) -> None:
    """0010 rebuilds `videos` on SQLite (batch mode: copy, drop, rename); with foreign keys
    on, dropping the old table deleted every cache, member and prediction of its videos."""
    engine = create_db_engine(blank_db_url)
    upgrade(engine, "0009")
    _fill_at_0009(engine)
    upgrade(engine)
    with engine.connect() as connection:
        assert tuple(connection.execute(_ROWS_REFERRING_TO_VIDEOS).one()) == (2, 1, 1, 1, 1)
    downgrade(engine, "0009")  # 0010's downgrade rebuilds it again
    with engine.connect() as connection:
        assert tuple(connection.execute(_ROWS_REFERRING_TO_VIDEOS).one()) == (2, 1, 1, 1, 1)
    # The engine's connections enforce foreign keys again once the migration is over.
    orphan = "INSERT INTO feature_caches (video_id, fingerprint, is_valid) VALUES (99, 'f', true)"
    for _ in range(3):  # whichever pooled connection answers
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text(orphan))
    engine.dispose()


def test_a_migration_that_would_break_references_changes_nothing(tmp_path) -> None:  # noqa: ANN001
    """SQLite checks no reference while a migration runs; `check_foreign_keys` does at its
    end. A reference broken before the migration is left as it was, and counted as such."""
    from ddm.db import broken_references, check_foreign_keys

    engine = create_db_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    upgrade(engine, "0009")
    _fill_at_0009(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.exec_driver_sql("UPDATE run_members SET run_id = 99")  # a run never stored
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        assert broken_references(connection) == 1
        with pytest.raises(SetupError, match="1 more rows referring to missing rows"):
            check_foreign_keys(connection, before=0)
        check_foreign_keys(connection, before=1)  # not this migration's doing
    upgrade(engine)  # the broken member stays as it was; nothing else is lost
    with engine.connect() as connection:
        assert broken_references(connection) == 1
        assert tuple(connection.execute(_ROWS_REFERRING_TO_VIDEOS).one()) == (2, 1, 1, 1, 1)
    engine.dispose()
