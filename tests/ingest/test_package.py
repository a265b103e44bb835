"""Package data shipped with ddm.ingest, and the imports the ingest layer allows."""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import ddm.ingest
from ddm.ingest.common import ffpp_pairs
from tests.ingest.conftest import REFERENCE

SHIPPED = {
    "ffpp/train.json": "e59386911255e6fb0a79a7808ec2210536b8c0474268342694c4bca766d1b347",
    "ffpp/val.json": "b48cc511f66938e05356aaa9c67e150b1e3638c355db3d745225b0022884b36e",
    "ffpp/test.json": "886f5a0da623c25820692e0d8dc33d197ddb1db527a7f1cfcb9bcbca60fe4f40",
    "ffpp/conversion_dict.json": "2d5e03a3d4bd47ef0e8c84881f595ca1e1ba191928fa50dcd30a470a7173612f",
    "celebdf/List_of_testing_videos.txt": (
        "07063d46206e011aef9d1ad8d1854f5b87ae519ba6e452b897cc528c3dcfcdc0"
    ),
}
ALLOWED_IMPORTS = {"cv2", "numpy", "ddm"} | set(sys.stdlib_module_names)
DDM_IMPORTS = ("ddm.errors", "ddm.vocab")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_split_files_are_the_reference_copies(name: str) -> None:
    data = resources.files("ddm.ingest").joinpath("splits", *name.split("/")).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHIPPED[name]
    reference = REFERENCE / "datasets" / name.replace("ffpp/", "ff++/")
    if reference.exists():
        assert data == reference.read_bytes()


def test_official_ffpp_pairs_are_pair_closed() -> None:
    pairs = ffpp_pairs()
    ids = {split: {i for pair in p for i in pair} for split, p in pairs.items()}
    assert {s: len(p) for s, p in pairs.items()} == {"train": 360, "val": 70, "test": 70}
    assert len(ids["train"] | ids["val"] | ids["test"]) == 1000


def test_ingest_imports_only_the_stdlib_numpy_opencv_and_ddm() -> None:
    package = Path(ddm.ingest.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert {m.stem for m in modules} >= {"__init__", "records", "registry", "probe", "ffpp"}
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in ALLOWED_IMPORTS, f"{module.name} imports {name}"
                if name.startswith("ddm."):
                    assert name in DDM_IMPORTS or name.startswith("ddm.ingest"), name


def test_importing_ingest_pulls_in_no_heavy_framework() -> None:
    code = (
        "import sys, ddm.ingest.registry, ddm.ingest.probe;"
        "bad = {'torch', 'celery', 'click', 'rich', 'sqlalchemy'} & set(sys.modules);"
        "sys.exit(str(sorted(bad)) if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
