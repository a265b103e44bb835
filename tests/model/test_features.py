"""Feature extraction end to end on real and synthetic clips, the extractor fingerprint,
and the cache-file format."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.errors import IncompatibleFeatures, UnreadableVideo, WeightsNotFound
from model.faces import FaceDetector
from model.features import (
    ExtractorCfg,
    FeatureExtractor,
    build_extractor,
    extractor_fingerprint,
    is_random_fingerprint,
    load_features,
    save_features,
)
from model.weights import sha256_file
from tests.model.helpers import perturbed_state

SMALL = ExtractorCfg(num_frames=8, face_size=64)  # pSp runs at 64 px to keep tests fast
REAL = {"psp_encoder": "a" * 64, "slow_r50": "b" * 64}


@pytest.fixture
def extractor(psp_model, slow_model, face_detector: FaceDetector) -> FeatureExtractor:
    return FeatureExtractor(
        SMALL, psp_model, slow_model, face_detector, {"psp_encoder": None, "slow_r50": None}
    )


def test_fingerprint_is_stable_and_names_everything() -> None:
    base = extractor_fingerprint(SMALL, REAL)
    assert base == extractor_fingerprint(ExtractorCfg(num_frames=8, face_size=64), dict(REAL))
    assert len(base) == 64 and not is_random_fingerprint(base)
    others = {
        extractor_fingerprint(replace(SMALL, num_frames=16), REAL),
        extractor_fingerprint(replace(SMALL, levels=(8,)), REAL),
        extractor_fingerprint(replace(SMALL, margin=0.3), REAL),
        extractor_fingerprint(replace(SMALL, min_face_prob=0.9), REAL),
        extractor_fingerprint(replace(SMALL, box_smoothing=0), REAL),
        extractor_fingerprint(SMALL, {**REAL, "slow_r50": "c" * 64}),
    }
    assert base not in others and len(others) == 6


def test_fingerprints_of_the_published_backbones_did_not_change() -> None:
    # Recorded before the backbones became configurable: their caches stay valid.
    assert extractor_fingerprint(SMALL, REAL) == (
        "624f7e1af18ab48baee1baaba2f36b391d771480e52081ef312c53a4feeb6237"
    )
    assert extractor_fingerprint(ExtractorCfg(), {"psp_encoder": None, "slow_r50": None}) == (
        "random-f7bfa8ce76e432a6de8e3f6357dc49133a6a1e40ffc76f507cf4a4091d239570"
    )


def test_the_small_backbones_have_their_own_fingerprint() -> None:
    small = replace(SMALL, style_model="psp_encoder_small", content_model="slow_r50_small")
    weights = {"psp_encoder_small": None, "slow_r50_small": None}
    assert extractor_fingerprint(small, weights) != extractor_fingerprint(
        SMALL, {"psp_encoder": None, "slow_r50": None}
    )


def test_fingerprint_names_the_extractor_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # Version 2 (face tracks) must never share caches with version 1 (per-frame faces).
    current = extractor_fingerprint(SMALL, REAL)
    monkeypatch.setattr("model.features.EXTRACTOR_VERSION", "1")
    assert extractor_fingerprint(SMALL, REAL) != current


def test_random_weights_are_marked_in_the_fingerprint() -> None:
    fingerprint = extractor_fingerprint(SMALL, {**REAL, "psp_encoder": None})
    assert fingerprint.startswith("random-") and is_random_fingerprint(fingerprint)
    assert fingerprint != extractor_fingerprint(SMALL, {"psp_encoder": None, "slow_r50": None})


def test_cfg_from_json_lists_is_canonical() -> None:
    assert ExtractorCfg(levels=[9, 3]).levels == (9, 3)  # type: ignore[arg-type]
    assert extractor_fingerprint(ExtractorCfg(levels=[9]), REAL) == extractor_fingerprint(  # type: ignore[arg-type]
        ExtractorCfg(), REAL
    )


def test_missing_weights_fail_fast_unless_random_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound, match="psp_ffhq_encode.pt"):
        build_extractor(SMALL, weights_dir=tmp_path)
    with pytest.raises(WeightsNotFound, match="does not exist"):
        build_extractor(SMALL, psp_weights=tmp_path / "x.pt", allow_random_weights=True)


@pytest.fixture
def weights_dir(tmp_path: Path, psp_official, slow_model) -> Path:
    """A DDM_WEIGHTS_DIR holding both files under their official names."""
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "psp_ffhq_encode.pt").symlink_to(psp_official[0])  # 1 GB: link, don't copy
    torch.save({"model_state": perturbed_state(slow_model)}, folder / "SLOW_8x8_R50.pyth")
    return folder


def test_extractor_with_official_files(weights_dir: Path, psp_official, faceless_clip) -> None:
    extractor = build_extractor(SMALL, weights_dir=weights_dir)
    assert extractor.weights_sha256 == {
        "psp_encoder": sha256_file(psp_official[0]),
        "slow_r50": sha256_file(weights_dir / "SLOW_8x8_R50.pyth"),
    }
    assert not extractor.has_random_weights
    assert extractor.fingerprint == extractor_fingerprint(SMALL, extractor.weights_sha256)
    description = extractor.describe()
    assert json.loads(json.dumps(description)) == description
    # Official style vectors include latent_avg, as the StyleFlow authors' code has them.
    latent_avg = psp_official[2]
    assert torch.equal(extractor.style_encoder.latent_avg, latent_avg)
    raw = FeatureExtractor(
        replace(SMALL, add_latent_avg=False),
        extractor.style_encoder,
        extractor.content_encoder,
        extractor.face_detector,
        extractor.weights_sha256,
    )
    assert raw.fingerprint != extractor.fingerprint
    with_avg = extractor.extract(faceless_clip)["style"]
    without = raw.extract(faceless_clip)["style"]
    torch.testing.assert_close(with_avg - without, latent_avg[[9]].expand(8, 1, 512))


def test_random_weights_only_where_files_are_missing(weights_dir: Path) -> None:
    (weights_dir / "psp_ffhq_encode.pt").unlink()
    extractor = build_extractor(SMALL, weights_dir=weights_dir, allow_random_weights=True)
    assert extractor.weights_sha256["psp_encoder"] is None
    assert extractor.weights_sha256["slow_r50"] == sha256_file(weights_dir / "SLOW_8x8_R50.pyth")
    assert extractor.has_random_weights and extractor.fingerprint.startswith("random-")


def test_extract_one_real_video(extractor: FeatureExtractor, real_clip: Path) -> None:
    features = extractor.extract(real_clip)
    assert features["content"].shape == (1, 2048) and features["content"].dtype == torch.float32
    assert features["style"].shape == (8, 1, 512) and features["style"].dtype == torch.float32
    assert torch.isfinite(features["content"]).all() and torch.isfinite(features["style"]).all()
    assert features["boxes"].shape == (8, 4)
    assert features["fallback_per_frame"].dtype == torch.bool
    assert features["num_fallback"] == int(features["fallback_per_frame"].sum()) <= 1
    assert features["has_fallback"] == (features["num_fallback"] > 0)
    assert features["frame_source"].shape == (8,) and features["frame_source"].dtype == torch.uint8
    assert features["frame_source_names"] == ["detected", "interpolated", "fallback"]
    detected, interpolated = (features["frame_source"] == code for code in (0, 1))
    assert features["num_interpolated"] == int(interpolated.sum())
    assert int(detected.sum()) + features["num_interpolated"] == 8  # a face track: no fallback
    assert features["num_video_frames"] == 309
    assert set(features["timings"]) == {
        "decode",
        "detect",
        "track",
        "crop",
        "style",
        "content",
        "total",
    }
    assert features["fingerprint"].startswith("random-")


def test_extract_a_faceless_video(extractor: FeatureExtractor, faceless_clip: Path) -> None:
    features = extractor.extract(faceless_clip)
    assert features["fallback_per_frame"].all()
    assert features["num_fallback"] == 8 and features["has_fallback"]
    assert features["frame_source"].tolist() == [2] * 8 and features["num_interpolated"] == 0
    assert features["style"].shape == (8, 1, 512)


def test_two_content_clips_for_32_frames(psp_model, slow_model, face_detector, faceless_clip):
    cfg = ExtractorCfg(num_frames=32, face_size=32, content_size=32)
    extractor = FeatureExtractor(cfg, psp_model, slow_model, face_detector, REAL)
    features = extractor.extract(faceless_clip)
    assert features["content"].shape == (2, 2048)
    assert features["style"].shape == (32, 1, 512)


def test_extract_an_unreadable_video(extractor: FeatureExtractor, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(UnreadableVideo):
        extractor.extract(broken)


def sample_features() -> dict:
    return {
        "content": torch.randn(2, 2048),
        "style": torch.randn(32, 1, 512),
        "boxes": torch.arange(128).reshape(32, 4),
        "fallback_per_frame": torch.zeros(32, dtype=torch.bool),
        "frame_source": (torch.arange(32) % 3 == 0).to(torch.uint8),
        "frame_source_names": ["detected", "interpolated", "fallback"],
        "frame_indices": torch.arange(32),
        "num_fallback": 0,
        "has_fallback": False,
        "num_interpolated": 11,
        "num_video_frames": 300,
        "timings": {"decode": 0.5, "detect": 1.25, "track": 0.001},
        "fingerprint": "random-abc",
    }


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_feature_files_round_trip(tmp_path: Path, suffix: str) -> None:
    features = sample_features()
    path = tmp_path / "cache" / f"video{suffix}"
    save_features(path, features)
    loaded = load_features(path)
    assert loaded.keys() == features.keys()
    for key, value in features.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(loaded[key], value) and loaded[key].dtype == value.dtype, key
        else:
            assert loaded[key] == value, key
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left over


def test_torch_feature_files_load_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "video.pt"
    save_features(path, sample_features())
    assert torch.load(path, weights_only=True)["style"].shape == (32, 1, 512)


def test_feature_files_need_content_and_style(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleFeatures, match="'style'"):
        save_features(tmp_path / "a.pt", {"content": torch.zeros(1, 2048)})
    path = tmp_path / "b.pt"
    torch.save({"content": torch.zeros(1, 2048), "style": torch.zeros(8, 512)}, path)
    with pytest.raises(IncompatibleFeatures, match="3-d"):
        load_features(path)
    with pytest.raises(IncompatibleFeatures, match="does not exist"):
        load_features(tmp_path / "absent.pt")


def test_feature_files_with_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({**sample_features(), "extra": Path("/")}, path)
    with pytest.raises(IncompatibleFeatures, match="pickled objects other than tensors"):
        load_features(path)


@pytest.mark.slow
def test_default_extractor_on_a_real_clip(real_clip: Path) -> None:
    extractor = build_extractor(allow_random_weights=True)
    features = extractor.extract(real_clip)
    print("seconds per stage (default cfg, random weights):", features["timings"])
    assert features["content"].shape == (2, 2048)
    assert features["style"].shape == (32, 1, 512)
    assert features["num_fallback"] <= 4


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_features_are_refused_and_nothing_is_written(
    tmp_path: Path, value: float
) -> None:
    features = sample_features()
    features["style"][3, 0, 7] = value
    path = tmp_path / "video.pt"
    with pytest.raises(IncompatibleFeatures, match="'style' holds 1 non-finite value"):
        save_features(path, features)
    assert not path.exists() and list(tmp_path.iterdir()) == []
