"""The findings half end to end on the real clips, inline on SQLite, as a user types it:
ingest FF++ and DFDC, extract, train on ff, report on ff's test split and on dfdc, and
score single files with `ddm predict`."""

from __future__ import annotations

import functools
import json
import shutil

import pytest

from tests.cli.conftest import ok_json
from tests.conftest import MEDIA, invoke_ddm, private_ddm_env

FRAMES = "2"  # the pipeline is the production one; two frames keep CPU extraction short
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, str]:
    """ff and dfdc ingested and extracted, and one run trained on ff: the environment of
    that catalog, shared by the tests of this module (extraction is the slow part)."""
    env = private_ddm_env(tmp_path_factory.mktemp("findings") / "home")
    for name in ("ff++", "dfdc"):
        result = invoke_ddm(env, "ingest", str(MEDIA / name), "--name", name.strip("+"))
        assert result.exit_code == 0, result.stderr
        extracted = invoke_ddm(
            env,
            "extract",
            "--dataset",
            name.strip("+"),
            "--frames",
            FRAMES,
            "--allow-random-weights",
        )
        assert extracted.exit_code == 0, extracted.stderr
    run = ok_json(
        invoke_ddm(env, "train", "--datasets", "ff", "--epochs", "3", "--batch-size", "2", "--json")
    )
    assert run["status"] == "succeeded" and (run["train_videos"], run["val_videos"]) == (3, 2)
    return {"DDM_HOME": env["DDM_HOME"]}


def test_train_on_ff_then_report_in_domain_and_on_dfdc(run_ddm, trained, tmp_path) -> None:
    run_ddm = functools.partial(run_ddm, env=trained)
    held_out = ok_json(run_ddm("report", "--eval", "ff", "--json"))
    (entry,) = held_out["runs"]
    assert (entry["split"], entry["n_videos"], entry["held_out"]) == ("test", 2, True)
    assert {p["path"] for p in entry["predictions"]} == {
        "original_sequences/youtube/c23/videos/634.mp4",
        "manipulated_sequences/FaceSwap/c23/videos/634_660.mp4",
    }
    result = run_ddm("report", "--eval", "dfdc", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert "dfdc has no test split: every video is evaluated" in result.stderr
    assert "cross-dataset AUC / accuracy" in result.stdout
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    (entry,) = document["runs"]
    assert entry["n_videos"] == 3 and entry["auc"] is None  # three fakes: AUC is undefined
    assert entry["confusion"]["fn"] + entry["confusion"]["tp"] == 3
    assert document["cross_dataset"]["datasets"] == ["dfdc", "ff"]
    assert set(document["cross_dataset"]["rows"][0]["cells"]) == {"dfdc", "ff"}
    catalog = document["bias"]["catalog"]
    assert catalog["ff"]["by_label"]["fake"]["videos"] == 4
    assert catalog["dfdc"]["by_label"]["real"]["videos"] == 0
    stats = ok_json(run_ddm("stats", "--datasets", "ff", "--json"))
    assert stats["datasets"]["ff"]["separation"]["frame count"]["n_fake"] == 4


def test_predict_scores_known_and_new_files_and_names_the_unreadable(
    run_ddm, trained, tmp_path
) -> None:
    run_ddm = functools.partial(run_ddm, env=trained)
    known = MEDIA / "ff++/original_sequences/youtube/c23/videos/634.mp4"
    new = tmp_path / "lynaeydofd.mp4"
    shutil.copyfile(MEDIA / "samples/lynaeydofd.mp4", new)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(known.read_bytes()[:5000])
    result = run_ddm(
        "predict", str(known), str(broken), str(new), "--json", "--explain", str(tmp_path / "x")
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-2].startswith(f"error: {broken}: ")
    by_path = {answer["path"]: answer for answer in json.loads(result.stdout)}
    assert by_path[str(known)]["source"] == "cache" and by_path[str(new)]["source"] == "extracted"
    assert by_path[str(broken)]["score"] is None and by_path[str(broken)]["error"]
    for path in (known, new):
        answer = by_path[str(path)]
        assert 0.0 <= answer["score"] <= 1.0 and answer["frames_sampled"] == int(FRAMES)
        assert answer["label"] == ("fake" if answer["score"] >= 0.5 else "real")
        assert (tmp_path / "x" / f"{path.stem}.png").read_bytes().startswith(b"\x89PNG")

    # The score of a cached file equals the one its stored evaluation holds.
    report = ok_json(run_ddm("report", "--eval", "ff", "--json"))
    stored = {p["path"]: p["score"] for p in report["runs"][0]["predictions"]}
    relative = "original_sequences/youtube/c23/videos/634.mp4"
    assert by_path[str(known)]["score"] == pytest.approx(stored[relative], abs=1e-6)


def test_predict_without_a_run_is_one_line(run_ddm, tmp_path) -> None:
    result = run_ddm("predict", str(MEDIA / "samples/lynaeydofd.mp4"))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: no trained run to report on; run `ddm train --datasets NAME` first"
    )


def test_predict_warns_on_few_frames_refuses_stills_and_keeps_scores_without_figures(
    run_ddm, trained, tmp_path
) -> None:
    import cv2

    from tests.model.helpers import write_clip

    run_ddm = functools.partial(run_ddm, env=trained)
    capture = cv2.VideoCapture(str(MEDIA / "ff++/original_sequences/youtube/c23/videos/634.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    one_frame = write_clip(tmp_path / "one.mp4", frame[None, :, :, ::-1].copy())
    still = tmp_path / "still.png"
    assert cv2.imwrite(str(still), frame)

    result = run_ddm("predict", str(one_frame), str(still), "--json")
    assert result.exit_code == 1
    by_path = {answer["path"]: answer for answer in json.loads(result.stdout)}
    scored = by_path[str(one_frame)]
    assert scored["score"] is not None and scored["distinct_frames"] == 1
    assert f"warning: {one_frame}: only 1 distinct frame(s) for the 2 sampled" in result.stderr
    assert by_path[str(still)]["score"] is None
    assert "a PNG image, not a video" in by_path[str(still)]["error"]
    allowed = run_ddm("predict", str(still), "--allow-stills", "--json")
    assert allowed.exit_code == 0 and json.loads(allowed.stdout)[0]["distinct_frames"] == 1

    # A folder that cannot be made: every score stands, the figure's failure is its own line.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    clip = MEDIA / "ff++/original_sequences/youtube/c23/videos/634.mp4"
    explained = run_ddm("predict", str(clip), "--json", "--explain", str(blocker / "x"))
    assert explained.exit_code == 3, explained.stderr
    (answer,) = json.loads(explained.stdout)
    assert answer["score"] is not None and answer["error"] is None
    assert answer["explanation_error"].startswith(f"cannot write {blocker / 'x'}")
    assert f"error: {clip}: explanation not written: cannot write" in explained.stderr
