"""The device check's report and wheel rules (bench/gpu_report.py, bench/gpu_preflight.py):
a step that did not pass, or never reported, must show as a failure, never as a pass."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load("gpu_report")
preflight = _load("gpu_preflight")


def _write(folder: Path, name: str, value: dict) -> None:
    (folder / f"{name}.json").write_text("progress line\n" + json.dumps(value) + "\n")


def _smoke(**verdicts: str) -> dict:
    values = dict.fromkeys(report.PATHS, "pass")
    return {"benchmark": "gpu_smoke", **values, **verdicts, "errors": {}}


def test_every_path_passing_is_ok(tmp_path: Path) -> None:
    _write(tmp_path, "preflight", {"preflight": "pass", "missing": []})
    _write(tmp_path, "smoke", _smoke())
    result = report.merge(tmp_path, "smoke", 0, tmp_path / "log", 120)
    assert result["ok"] is True
    assert all(result[path] == "pass" for path in report.PATHS)


def test_a_path_not_reported_fails_with_the_reason(tmp_path: Path) -> None:
    # The progress file of a smoke stopped by the time limit: later paths still "fail".
    _write(tmp_path, "preflight", {"preflight": "pass", "missing": []})
    _write(tmp_path, "smoke", _smoke(evaluate="fail", predict="fail", resume_on_cpu="fail"))
    result = report.merge(tmp_path, "smoke", 124, tmp_path / "log", 120)
    assert result["ok"] is False
    assert result["extract_fp32"] == "pass"
    assert result["evaluate"] == "fail"
    assert "120 s limit" in result["errors"]["evaluate"]
    assert result["error"].startswith("timed out")


def test_a_failed_preflight_fails_every_path_and_names_what_is_missing(tmp_path: Path) -> None:
    missing = ["cv2: ImportError: libGL.so.1: cannot open shared object file"]
    _write(tmp_path, "preflight", {"preflight": "fail", "missing": missing})
    result = report.merge(tmp_path, "smoke", 3, tmp_path / "log", 120)
    assert result["missing"] == missing
    assert {result[path] for path in report.PATHS} == {"fail"}
    assert result["ok"] is False


def test_the_full_check_keeps_its_numbers_and_nests_the_smoke(tmp_path: Path) -> None:
    _write(tmp_path, "preflight", {"preflight": "pass", "missing": []})
    _write(tmp_path, "smoke", _smoke(train_epoch="fail"))
    _write(tmp_path, "full", {"benchmark": "gpu_check", "videos_done": 3})
    result = report.merge(tmp_path, "full", 1, tmp_path / "log", 300)
    assert result["videos_done"] == 3
    assert result["smoke"]["train_epoch"] == "fail"
    assert result["ok"] is False


def test_nothing_reported_is_not_ok(tmp_path: Path) -> None:
    result = report.merge(tmp_path, "full", 137, tmp_path / "log", 300)
    assert result["ok"] is False
    assert result["preflight"] == "fail"
    assert "error" in result


def _torchvision_wheel(folder: Path, local: str, torch_pin: str) -> None:
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    path = folder / f"torchvision-0.26.0-{tag}-{tag}-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("torchvision/version.py", f"__version__ = '0.26.0+{local}'\n")
        archive.writestr(
            "torchvision-0.26.0.dist-info/METADATA", f"Requires-Dist: torch (=={torch_pin})\n"
        )


def test_a_torchvision_wheel_for_this_torch_fits(tmp_path: Path, monkeypatch) -> None:
    base = torch.__version__.partition("+")[0]
    cuda = torch.version.cuda
    local = f"cu{cuda.replace('.', '')}" if cuda else "cpu"
    _torchvision_wheel(tmp_path, local, base)
    monkeypatch.setattr(preflight, "WHEELS", tmp_path)
    assert preflight.torchvision_wheel_facts()["fits_device_torch"] is True


@pytest.mark.skipif(torch.version.cuda is None, reason="a CPU build of torch has no CUDA major")
def test_a_torchvision_wheel_for_another_cuda_or_torch_does_not(tmp_path, monkeypatch) -> None:
    major = int(torch.version.cuda.split(".")[0])
    _torchvision_wheel(tmp_path, f"cu{major - 1}8", "2.11.0")
    monkeypatch.setattr(preflight, "WHEELS", tmp_path)
    facts = preflight.torchvision_wheel_facts()
    assert facts["fits_device_torch"] is False
    assert any("CUDA" in why or "cu" in why for why in facts["why"])
