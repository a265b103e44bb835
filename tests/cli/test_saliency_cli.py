"""`ddm predict --explain` points at the manipulation: a detector trained on the demo's
generated clips (small backbones, the demo's artefact strength, its training settings)
explains held-out fakes, and the saliency it writes falls inside the artefact's mask, which
the generator returns, at least twice the mask's share of the crop (the pointing game); on
the reals, measured on their fake twin's region, it does not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ddm.synthetic.clips import ARTEFACTS, ClipCfg, render_clip_with_masks
from model.faces import crop_resize
from model.saliency import pointing_share

CLIP = ClipCfg(frames=24, size=256, strength=0.3)  # the demo's clips, shorter
PAIRS = 12  # a real and a fake of one seed each: they differ by the artefact alone
METHOD = "Mouth"  # a local manipulation: a twentieth of the crop


def _ok(result) -> dict | list:  # noqa: ANN001
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _crop_masks(masks: np.ndarray, saved: np.lib.npyio.NpzFile) -> np.ndarray:
    """The generator's frame masks cut and resized as the face pipeline cut each crop."""
    side = saved["crops"].shape[1]
    return np.stack(
        [
            crop_resize(masks[int(index)], box, side) > 0.5
            for index, box in zip(saved["frame_indices"], saved["boxes"], strict=True)
        ]
    )


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_saliency_of_held_out_fakes_points_at_the_artefact(run_ddm, tmp_path: Path) -> None:
    root, masks = tmp_path / "mine", {}
    for n in range(PAIRS):
        for label, artefact in (("real", None), ("fake", ARTEFACTS[METHOD])):
            (root / label).mkdir(parents=True, exist_ok=True)
            _, frames = render_clip_with_masks(root / label / f"{n:02d}.mp4", n, CLIP, artefact)
            if artefact is not None:
                masks[f"{n:02d}"] = frames
    _ok(run_ddm("ingest", str(root), "--json"))
    _ok(run_ddm("split", "mine", "--json"))
    extract = ("--frames", "8", "--backbones", "small", "--allow-random-weights")
    assert run_ddm("extract", "--dataset", "mine", *extract).exit_code == 0
    train = ("--epochs", "30", "--lr", "1e-3", "--patience", "30", "--seed", "0")
    assert _ok(run_ddm("train", "--datasets", "mine", *train, "--json"))["status"] == "succeeded"

    videos = _ok(run_ddm("videos", "--dataset", "mine", "--json"))
    held_out = [root / v["path"] for v in videos if v["split"] == "test"]
    answers = _ok(
        run_ddm("predict", *map(str, held_out), "--explain", str(tmp_path / "x"), "--json")
    )
    shares: dict[str, list[float]] = {"real": [], "fake": []}
    areas = []
    for answer in answers:
        path = Path(answer["path"])
        sheet, raw = Path(answer["saliency"]), Path(answer["saliency_maps"])
        # real/01.mp4 and fake/01.mp4 share a name: the second one's files are numbered.
        assert sheet.name.startswith(path.stem) and sheet.name.endswith("-saliency.png")
        assert raw.name == sheet.name.replace(".png", ".npz")
        assert sheet.read_bytes().startswith(b"\x89PNG")
        with np.load(raw) as saved:
            region = _crop_masks(masks[path.stem], saved)  # a real: its fake twin's region
            maps = saved["maps"]
            assert float(saved["logit"]) == pytest.approx(answer["logit"], abs=1e-4)
        shares[path.parent.name].append(pointing_share(maps, region))
        areas.append(float(region.mean()))
    area = float(np.mean(areas))
    assert len(shares["fake"]) >= 2 and len(shares["real"]) >= 2, shares
    assert min(shares["fake"]) >= 2 * area, (shares, area)
    assert max(shares["real"]) < min(2 * area, min(shares["fake"])), (shares, area)
