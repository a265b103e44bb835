"""Bias statistics: a shortcut in the catalog is found and said in a sentence, and a run's
skews on an evaluated dataset are said plainly."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from ddm.catalog.models import Video
from ddm.catalog.stats import video_facts
from ddm.db import session_scope
from tasks.bias import catalog_bias, prediction_sentences
from tests.tasks.synth import make_synth


def test_an_attribute_that_separates_the_labels_is_called_a_shortcut(
    job_settings, factory, run_ddm
) -> None:
    make_synth(job_settings, factory)
    with session_scope(factory) as session:
        # Fakes are all 300 frames long, reals 250 to 310: frame count nearly separates them.
        for video in session.query(Video).order_by(Video.id):
            video.frame_count = 300 if video.label == "fake" else 250 + video.id % 61
            video.width, video.height, video.fps = 1280, 720, 30.0
    with session_scope(factory) as session:
        document = catalog_bias(video_facts(session, ["synth"]))
    entry = document["datasets"]["synth"]
    frames = entry["separation"]["frame count"]
    assert (frames["n_real"], frames["n_fake"]) == (8, 14)
    assert frames["separation"] > 0.75 and frames["direction"] == "higher in fake"
    assert entry["separation"]["width"]["separation"] == 0.5  # equal everywhere
    assert entry["by_label"]["fake"]["splits"] == {"train": 8, "val": 4, "test": 2, "none": 0}
    (sentence,) = document["sentences"]
    assert sentence.startswith("synth: frame count alone separates real from fake with AUC ")

    env = {"DDM_HOME": str(job_settings.home), "DDM_DATABASE_URL": job_settings.db_url}
    table = run_ddm("stats", env=env)
    assert table.exit_code == 0 and "frame count alone separates" in table.stdout
    unknown = run_ddm("stats", "--datasets", "nope", env=env)
    assert unknown.exit_code == 1 and "no dataset named 'nope'" in unknown.stderr


def test_too_few_videos_make_no_shortcut_sentence(job_settings, factory) -> None:
    make_synth(job_settings, factory)
    with session_scope(factory) as session:
        session.execute(update(Video).where(Video.split != "test").values(label=None))
        session.execute(update(Video).values(frame_count=Video.id))
    with session_scope(factory) as session:
        document = catalog_bias(video_facts(session))
    assert document["datasets"]["synth"]["separation"]["frame count"]["n_real"] == 2
    assert document["sentences"] == []


def _entry(tn: int, fp: int, fn: int, tp: int) -> dict:
    return {
        "run_id": 3,
        "train_datasets": ["ff"],
        "eval_dataset": "dfdc",
        "accuracy": (tn + tp) / (tn + fp + fn + tp),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def test_a_run_that_calls_most_fakes_real_is_said_so() -> None:
    assert prediction_sentences(_entry(tn=38, fp=2, fn=37, tp=3), {}) == [
        "run 3 (ff) predicts real for 37 of 40 dfdc fakes"
    ]
    assert prediction_sentences(_entry(tn=30, fp=10, fn=5, tp=35), {}) == []


@pytest.mark.parametrize("errors, said", [(9, True), (3, False)])
def test_a_group_erring_far_above_the_run_is_called_out(errors: int, said: bool) -> None:
    by = {
        "method": [
            {"group": "NeuralTextures", "n": 10, "errors": errors, "error_rate": errors / 10},
        ]
    }
    sentences = prediction_sentences(_entry(tn=40, fp=0, fn=10, tp=50), by)
    expected = (
        "run 3 (ff) errs on 9 of 10 dfdc videos with method NeuralTextures (overall error rate 10%)"
    )
    assert (expected in sentences) is said


def test_a_value_missing_in_one_class_only_is_said_to_separate(job_settings, factory) -> None:
    make_synth(job_settings, factory)
    with session_scope(factory) as session:
        session.execute(update(Video).where(Video.label == "fake").values(frame_count=300))
    with session_scope(factory) as session:
        document = catalog_bias(video_facts(session, ["synth"]))
    missing = document["datasets"]["synth"]["missing"]["frame count"]
    assert (missing["real"], missing["n_real"], missing["fake"], missing["n_fake"]) == (8, 8, 0, 14)
    assert missing["separation"] == 1.0
    assert document["datasets"]["synth"]["separation"]["frame count"] is None  # no real value
    assert document["sentences"] == [
        "synth: frame count is missing for 0 of 14 fakes but 8 of 8 reals; its absence alone "
        "separates real from fake with AUC 1.00"
    ]


def test_cache_statistics_read_one_extractor_not_the_newest_cache_of_any(
    job_settings, factory
) -> None:
    from ddm.catalog.models import FeatureCache
    from tests.tasks.synth import FINGERPRINT

    make_synth(job_settings, factory)
    with session_scope(factory) as session:
        session.execute(update(FeatureCache).values(frames_sampled=8, fallback_frames=0))
        # A second extractor, run later on three fakes only, fell back on every frame.
        fakes = session.query(Video).filter(Video.label == "fake").order_by(Video.id).limit(3)
        for video in fakes:
            session.add(
                FeatureCache(
                    video_id=video.id,
                    fingerprint="other-" + "d" * 40,
                    path=f"other/{video.id}.safetensors",
                    is_valid=True,
                    frames_sampled=16,
                    fallback_frames=16,
                )
            )
    with session_scope(factory) as session:
        chosen = catalog_bias(video_facts(session, ["synth"]))["datasets"]["synth"]
        other = catalog_bias(video_facts(session, ["synth"], fingerprint="other-" + "d" * 40))
    assert chosen["cache_fingerprint"] == FINGERPRINT
    assert chosen["by_label"]["fake"]["fallback_rate"] == 0.0
    assert chosen["by_label"]["fake"]["with_cache"] == 14
    fake = other["datasets"]["synth"]["by_label"]["fake"]
    assert (fake["with_cache"], fake["fallback_rate"]) == (3, 1.0)
