"""The layering contracts of pyproject.toml hold (import-linter), checked on every run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a dev dependency; `make test` installs it"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_networks_import_without_the_settings_libraries() -> None:
    # The device check runs the model layer on a machine with torch, numpy and OpenCV only.
    code = (
        "import sys, model.registry, model.features, model.train, model.evaluate; "
        "print(sorted(m for m in ('pydantic', 'sqlalchemy', 'celery') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
