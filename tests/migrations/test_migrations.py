"""The Alembic chain: one head, up and down on both dialects, and no drift from the models."""

from __future__ import annotations

import re
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from ddm.catalog.models import Base
from ddm.db import create_db_engine, downgrade, head_revision, migrations_dir, schema_state, upgrade

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
