"""Training runs in the catalog: which videos a run may use, its frozen membership, its
lifecycle and epochs, on real rows on both dialects."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from ddm.catalog.jobs import create_job
from ddm.catalog.models import Dataset, FeatureCache, Video
from ddm.catalog.records import to_json
from ddm.catalog.runs import (
    LeftOut,
    create_run,
    finish_run,
    get_run,
    list_runs,
    next_run_name,
    record_epoch,
    run_epochs,
    run_members,
    set_last_state,
    set_run_job,
    start_run,
    training_selection,
)
from ddm.errors import AlreadyExists, InvalidInput, NotFound
from ddm.vocab import ProbeStatus

FP = "fp-" + "a" * 40
OTHER_FP = "fp-" + "b" * 40
NO_ONE_LEFT_OUT = dict.fromkeys((reason.value for reason in LeftOut), 0)


def make_video(
    session: Session,
    name: str,
    *,
    dataset: str = "ff",
    split: str | None = "train",
    label: str | None = "fake",
    present: bool = True,
    probe_status: str = ProbeStatus.OK.value,
) -> Video:
    owner = session.scalars(select(Dataset).where(Dataset.name == dataset)).one_or_none()
    if owner is None:
        owner = Dataset(name=dataset, format="folder", root_path=f"/data/{dataset}")
        session.add(owner)
        session.flush()
    video = Video(
        dataset_id=owner.id,
        path=f"{name}.mp4",
        content_hash=f"hash-{dataset}-{name}",
        split=split,
        label=label,
        is_present=present,
        probe_status=probe_status,
    )
    session.add(video)
    session.flush()
    return video


def make_cache(
    session: Session, video: Video, *, fingerprint: str = FP, is_valid: bool = True
) -> FeatureCache:
    row = FeatureCache(
        video_id=video.id,
        fingerprint=fingerprint,
        path=f"{fingerprint}/{video.content_hash}.npz",
        checksum=f"{video.id:064d}",
        is_valid=is_valid,
    )
    session.add(row)
    session.flush()
    return row


def cached(session: Session, name: str, fingerprints: tuple[str, ...] = (FP,), **kw) -> Video:
    video = make_video(session, name, **kw)
    for fingerprint in fingerprints:
        make_cache(session, video, fingerprint=fingerprint)
    return video


def ids(candidates) -> list[int]:
    return [candidate.video_id for candidate in candidates]


# --------------------------------------------------------------------------- selection


def test_only_train_and_val_are_selected_and_test_is_never_counted(session: Session) -> None:
    train = cached(session, "t1", split="train")
    val = cached(session, "v1", split="val", label="real")
    cached(session, "x1", split="test")
    make_video(session, "x2", split="test")  # no cache: would count as left out if read
    cached(session, "other", dataset="dfdc")  # a dataset not asked for

    statements: list[str] = []
    connection = session.connection()
    event.listen(connection, "before_cursor_execute", lambda *args: statements.append(args[2]))
    selection = training_selection(session, ["ff"])

    # Every query over videos filters the split in the database: no test row is fetched.
    over_videos = [sql for sql in statements if "videos" in sql]
    assert over_videos and all("videos.split IN" in sql for sql in over_videos), over_videos
    assert selection.fingerprint == FP
    assert ids(selection.train) == [train.id]
    assert ids(selection.val) == [val.id]
    assert selection.left_out == NO_ONE_LEFT_OUT
    assert selection.coverage == {FP: 2}
    [member] = selection.val
    assert (member.dataset, member.path, member.label) == ("ff", "v1.mp4", "real")
    assert (member.cache_path, member.content_hash) == (f"{FP}/hash-ff-v1.npz", "hash-ff-v1")
    assert member.cache_checksum == f"{val.id:064d}"


def test_fingerprint_of_widest_coverage_is_chosen_by_default(session: Session) -> None:
    both = cached(session, "a", (FP, OTHER_FP))
    cached(session, "b", (OTHER_FP,))
    only_fp = cached(session, "c", (FP,), split="val")
    cached(session, "d", (OTHER_FP,), split="val")

    widest = training_selection(session, ["ff"])
    assert (widest.fingerprint, widest.coverage) == (OTHER_FP, {OTHER_FP: 3, FP: 2})
    assert widest.left_out["other fingerprint"] == 1

    asked = training_selection(session, ["ff"], fingerprint=FP)
    assert (ids(asked.train), ids(asked.val)) == ([both.id], [only_fp.id])
    assert asked.left_out["other fingerprint"] == 2
    assert training_selection(session, ["ff"], fingerprint=FP[:19]).fingerprint == FP


def test_a_tie_goes_to_the_smallest_fingerprint(session: Session) -> None:
    cached(session, "a", (OTHER_FP,))
    cached(session, "b", (FP,))
    assert training_selection(session, ["ff"]).fingerprint == FP


def test_every_reason_to_leave_a_video_out_is_counted(session: Session) -> None:
    kept = cached(session, "kept")
    cached(session, "gone", present=False)
    cached(session, "broken", probe_status=ProbeStatus.CORRUPT.value)
    cached(session, "nolabel", label=None)
    make_video(session, "nocache")
    make_cache(session, make_video(session, "invalid"), is_valid=False)
    cached(session, "elsewhere", (OTHER_FP,), split="val")
    # Tried under another extractor and failed: nothing usable, so "no cache".
    make_cache(session, make_video(session, "failed"), fingerprint=OTHER_FP, is_valid=False)

    selection = training_selection(session, ["ff"], fingerprint=FP)

    assert (ids(selection.train), selection.val) == ([kept.id], [])
    assert selection.left_out == {
        "missing": 1,
        "unreadable": 1,
        "unlabelled": 1,
        "no cache": 2,
        "invalid cache": 1,
        "other fingerprint": 1,
    }
    # Ineligible videos do not count towards an extractor's coverage.
    assert selection.coverage == {FP: 1, OTHER_FP: 1}


def test_unknown_datasets_are_named_in_one_line(session: Session) -> None:
    cached(session, "a")
    with pytest.raises(NotFound) as caught:
        training_selection(session, ["nope", "ff", "gone"])
    message = str(caught.value)
    assert "'nope'" in message and "'gone'" in message and "known: ff" in message
    assert "\n" not in message


def test_no_valid_cache_names_the_extract_command(session: Session) -> None:
    make_video(session, "a")
    make_video(session, "b", dataset="celebdf", split="val")
    cached(session, "c", dataset="celebdf", split="test")  # the test split does not count
    with pytest.raises(InvalidInput) as caught:
        training_selection(session, ["ff", "celebdf"])
    assert str(caught.value) == (
        "no valid feature cache in the train or val splits of ff, celebdf; "
        "run `ddm extract --dataset ff` first"
    )


def test_a_fingerprint_without_valid_caches_lists_the_known_ones(session: Session) -> None:
    cached(session, "a", (FP, OTHER_FP))
    with pytest.raises(InvalidInput) as caught:
        training_selection(session, ["ff"], fingerprint="fp-c")
    message = str(caught.value)
    assert message.endswith(f"known fingerprints: {FP[:19]}, {OTHER_FP[:19]}")
    assert "'fp-c'" in message
    with pytest.raises(InvalidInput, match="ambiguous"):
        training_selection(session, ["ff"], fingerprint="fp-")


def test_selection_serialises_to_json(session: Session) -> None:
    cached(session, "a")
    document = json.loads(json.dumps(to_json(training_selection(session, ["ff"]))))
    assert document["train"][0]["dataset"] == "ff"
    assert document["left_out"]["no cache"] == 0


# --------------------------------------------------------------------------- runs


def _run(session: Session, name: str = "ff-1", datasets: tuple[str, ...] = ("ff",)):
    selection = training_selection(session, list(datasets))
    return create_run(
        session,
        name=name,
        datasets=list(datasets),
        config={"epochs": 3, "seed": 7},
        fingerprint=selection.fingerprint,
        train=selection.train,
        val=selection.val,
    )


def test_a_run_round_trips(session: Session) -> None:
    train = [cached(session, f"t{i}") for i in range(3)]
    val = cached(session, "v", split="val", label="real")

    run = _run(session)

    assert (run.status, run.fingerprint, run.train_videos, run.val_videos) == ("queued", FP, 3, 1)
    assert (run.datasets, run.config) == (["ff"], {"epochs": 3, "seed": 7})
    assert get_run(session, run.id) == get_run(session, "ff-1") == get_run(session, str(run.id))
    members = run_members(session, run.id)
    assert [m.video_id for m in members] == sorted([v.id for v in train] + [val.id])
    [val_member] = run_members(session, run.id, role="val")
    assert (val_member.video_id, val_member.label, val_member.role) == (val.id, "real", "val")
    assert val_member.cache_checksum == f"{val.id:064d}"
    assert val_member.content_hash == "hash-ff-v"
    assert len(run_members(session, run.id, role="train")) == 3

    set_run_job(session, run.id, _job_id(session))
    started = start_run(session, run.id, "/home/runs/1")
    assert (started.status, started.run_dir) == ("running", "/home/runs/1")
    assert started.started_at is not None
    assert start_run(session, run.id, "/home/runs/1").started_at == started.started_at
    record_epoch(session, run.id, 1, **_metrics(0.6))
    record_epoch(session, run.id, 0, **_metrics(0.7))
    assert set_last_state(session, run.id, "/home/runs/1/last.pt").last_state_path.endswith(
        "last.pt"
    )
    done = finish_run(session, run.id, "succeeded", best_epoch=1, checkpoint_path="best.pt")

    assert (done.status, done.best_epoch, done.checkpoint_path) == ("succeeded", 1, "best.pt")
    assert done.finished_at is not None and done.error is None
    assert done.job_id is not None
    assert [e.epoch for e in run_epochs(session, run.id)] == [0, 1]
    assert run_epochs(session, run.id)[1].val_loss == pytest.approx(0.6)
    document = json.loads(json.dumps(to_json(get_run(session, run.id))))
    assert document["name"] == "ff-1" and document["finished_at"].endswith("Z")


def _job_id(session: Session) -> int:
    return create_job(session, "train", {}).id


def _metrics(loss: float) -> dict[str, float]:
    return {
        "train_loss": loss,
        "train_accuracy": 0.5,
        "val_loss": loss,
        "val_accuracy": 0.5,
        "learning_rate": 1e-3,
    }


def test_a_redone_epoch_replaces_its_row(session: Session) -> None:
    cached(session, "a")
    run = _run(session)
    record_epoch(session, run.id, 4, **_metrics(0.9))
    record_epoch(session, run.id, 4, **_metrics(0.2))
    [epoch] = run_epochs(session, run.id)
    assert (epoch.epoch, epoch.train_loss, epoch.val_loss) == (4, 0.2, 0.2)


def test_finish_keeps_a_best_checkpoint_it_is_not_given(session: Session) -> None:
    cached(session, "a")
    run = _run(session)
    finish_run(session, run.id, "failed", best_epoch=2, checkpoint_path="best.pt", error="x")
    again = finish_run(session, run.id, "cancelled", error="cancelled")
    assert (again.status, again.best_epoch, again.checkpoint_path) == ("cancelled", 2, "best.pt")
    with pytest.raises(InvalidInput, match="not a final status"):
        finish_run(session, run.id, "running")


def test_a_taken_name_is_refused_and_next_name_skips_it(session: Session) -> None:
    cached(session, "a")
    cached(session, "b", dataset="celebdf")
    assert next_run_name(session, ["ff", "celebdf"]) == "ff+celebdf-1"
    _run(session, "ff+celebdf-1", ("ff", "celebdf"))
    _run(session, "ff+celebdf-3", ("ff", "celebdf"))
    assert next_run_name(session, ["ff", "celebdf"]) == "ff+celebdf-2"
    with pytest.raises(AlreadyExists) as caught:
        _run(session, "ff+celebdf-1")
    assert "'ff+celebdf-1'" in str(caught.value) and "\n" not in str(caught.value)


def test_list_runs_newest_first_and_by_status(session: Session) -> None:
    cached(session, "a")
    first, second, third = (_run(session, f"r{i}") for i in range(3))
    finish_run(session, second.id, "failed", error="boom")
    assert [r.name for r in list_runs(session)] == ["r2", "r1", "r0"]
    assert [r.name for r in list_runs(session, limit=2)] == ["r2", "r1"]
    assert [r.id for r in list_runs(session, status="failed")] == [second.id]
    assert {first.id, third.id} == {r.id for r in list_runs(session, status="queued")}


def test_unknown_runs_name_the_list_command(session: Session) -> None:
    with pytest.raises(NotFound, match="`ddm runs list`"):
        get_run(session, 99)
    with pytest.raises(NotFound, match="'nope'"):
        get_run(session, "nope")
    with pytest.raises(NotFound):
        run_epochs(session, 99)
    with pytest.raises(NotFound):
        record_epoch(session, 99, 0, **_metrics(0.1))


def test_membership_is_frozen_against_re_extraction_and_re_ingest(session: Session) -> None:
    video = cached(session, "a")
    cached(session, "b", split="val", label="real")
    run = _run(session)
    before = run_members(session, run.id)

    # Re-extraction writes a new file with a new checksum; a re-ingest changes the video.
    session.execute(
        update(FeatureCache)
        .where(FeatureCache.video_id == video.id)
        .values(checksum="f" * 64, path="elsewhere.npz")
    )
    session.execute(
        update(Video).where(Video.id == video.id).values(content_hash="new", label="real")
    )
    cached(session, "c")  # a later ingest adds a video

    assert run_members(session, run.id) == before
    assert get_run(session, run.id).train_videos == 1
    [member] = run_members(session, run.id, role="train")
    assert (member.cache_checksum, member.label) == (f"{video.id:064d}", "fake")
