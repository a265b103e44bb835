"""A plain folder of one's own clips, start to finish through the CLI: 12 real and 12 fake
clips rendered by `ddm.synthetic`, ingested, split, extracted with the small backbones,
trained and reported on their own held-out test split, every step at its defaults."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ddm.synthetic.clips import ARTEFACTS, ClipCfg, render_clip

CLIP = ClipCfg(frames=40, size=256, strength=0.3)  # the demo's clips


def _ok(result) -> dict | list:  # noqa: ANN001
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
# About 80 s on two idle cores (training at its defaults is most of it); far more while
# other suites share them.
@pytest.mark.timeout(1800)
def test_a_folder_of_twelve_real_and_twelve_fake_clips_trains_and_reports(
    run_ddm, tmp_path: Path
) -> None:
    root = tmp_path / "mine"
    for n in range(12):
        for label, artefact in (("real", None), ("fake", ARTEFACTS["Seam"])):
            (root / label).mkdir(parents=True, exist_ok=True)
            render_clip(root / label / f"{n:02d}.mp4", n, CLIP, artefact)

    _ok(run_ddm("ingest", str(root), "--json"))
    _ok(run_ddm("split", "mine", "--json"))
    videos = _ok(run_ddm("videos", "--dataset", "mine", "--json"))
    assert Counter((v["split"], v["label"]) for v in videos) == {
        (split, label): count
        for split, count in (("train", 8), ("val", 2), ("test", 2))
        for label in ("real", "fake")
    }
    extract = ("--frames", "8", "--backbones", "small", "--allow-random-weights")
    extracted = run_ddm("extract", "--dataset", "mine", *extract)
    assert extracted.exit_code == 0, extracted.stderr
    trained = _ok(run_ddm("train", "--datasets", "mine", "--json"))
    assert trained["status"] == "succeeded", trained

    report = _ok(run_ddm("report", "--eval", "mine", "--json"))

    (entry,) = report["runs"]
    assert (entry["split"], entry["n_videos"], entry["held_out"]) == ("test", 4, True)
    assert Counter(p["label"] for p in entry["predictions"]) == {"real": 2, "fake": 2}
    assert entry["auc"] is not None and 0.0 <= entry["accuracy"] <= 1.0
