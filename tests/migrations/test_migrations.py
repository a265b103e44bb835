"""The Alembic chain: one head, up and down on both dialects, and no drift from the models."""

from __future__ import annotations

import re
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

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
