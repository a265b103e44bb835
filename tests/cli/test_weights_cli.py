"""`ddm weights` names the official files and finds them where the settings say."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def test_weights_reports_found_and_missing_files(run_ddm, tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "SLOW_8x8_R50.pyth").write_bytes(b"not really weights")
    result = run_ddm("weights", "--weights-dir", str(folder), "--hash", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert rows["psp_encoder"]["file"] == "psp_ffhq_encode.pt"
    assert rows["psp_encoder"]["found"] is False and rows["psp_encoder"]["sha256"] is None
    assert rows["slow_r50"]["found"] is True and rows["slow_r50"]["bytes"] == 18
    assert rows["slow_r50"]["sha256"] == hashlib.sha256(b"not really weights").hexdigest()

    table = run_ddm("weights", "--weights-dir", str(folder))
    assert table.exit_code == 0 and "psp_ffhq_encode.pt" in table.stdout
    assert f"put the missing files in {folder}" in table.stderr.replace("\n", " ")
