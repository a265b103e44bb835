"""`ddm.catalog.leakage.MemberKeys`: runs that share a reader of their members' keys each
get exactly what a reader of their own gives, whether their members overlap or not."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ddm.catalog.leakage import MemberKeys, SeenByRun, VideoKeys, seen_by_run
from ddm.catalog.models import Dataset, Run, RunMember, Video
from ddm.vocab import Leak


def _catalog(session: Session) -> dict[str, int]:
    """Two datasets; runs whose members overlap, nest and differ. Returns run ids by name."""
    ff = Dataset(name="ff", format="ffpp", root_path="/data/ff")
    other = Dataset(name="other", format="folder", root_path="/data/other")
    session.add_all([ff, other])
    session.flush()
    videos = [
        Video(
            dataset_id=ff.id,
            path=f"manipulated_sequences/X/{level}/videos/{n:03d}_{n + 1:03d}.mp4",
            compression=level,
            split="train",
            identity_group=f"g{n % 3}",
            target_identity=f"p{n}",
            source_identity=f"p{n + 1}",
        )
        for n in range(6)
        for level in ("c23", "c40")
    ]
    videos += [
        Video(dataset_id=other.id, path=f"clip{n}.mp4", identity_group=None) for n in range(3)
    ]
    session.add_all(videos)
    session.flush()
    members = {
        "first": [0, 1, 2, 3],
        "overlapping": [2, 3, 4, 5, 12],
        "nested": [2, 3],
        "apart": [6, 7, 13, 14],
        "empty": [],
    }
    run_ids = {}
    for name, indexes in members.items():
        run = Run(name=name, datasets=["ff"])
        session.add(run)
        session.flush()
        session.add_all(
            RunMember(
                run_id=run.id,
                video_id=videos[i].id,
                role="train",
                label="real",
                cache_path=f"{i}.npz",
                cache_checksum="c" * 64,
                content_hash=None if i % 4 == 0 else f"hash-{i}",
            )
            for i in indexes
        )
        run_ids[name] = run.id
    session.flush()
    return run_ids


def test_a_shared_reader_gives_each_run_what_its_own_reader_gives(session: Session) -> None:
    run_ids = _catalog(session)
    shared = MemberKeys(session)
    for name, run_id in run_ids.items():
        alone: SeenByRun = seen_by_run(session, run_id, ["ff"])
        assert shared.seen_by_run(run_id, ["ff"]) == alone, name
    # A run read again, after the others, still sees only its own members.
    assert shared.seen_by_run(run_ids["nested"], ["ff"]) == seen_by_run(
        session, run_ids["nested"], ["ff"]
    )


def test_what_a_run_saw_is_its_members_keys(session: Session) -> None:
    run_ids = _catalog(session)
    seen = MemberKeys(session).seen_by_run(run_ids["nested"], ["ff"])
    assert len(seen.video_ids) == 2
    assert seen.content_hashes == {"hash-2", "hash-3"}
    # Videos 2 and 3 are sequence 001_002 at c23 and c40: one sequence, compression masked.
    assert seen.sequences == {("ffpp", "manipulated_sequences/X/*/videos/001_002.mp4")}
    assert seen.identities == {
        ("ffpp", "group", "g1"),
        ("ffpp", "person", "p1"),
        ("ffpp", "person", "p2"),
    }
    empty = MemberKeys(session).seen_by_run(run_ids["empty"], [])
    assert not (empty.video_ids or empty.sequences or empty.identities or empty.train_datasets)


def test_sequences_and_identities_match_only_within_a_format(session: Session) -> None:
    run_ids = _catalog(session)
    seen = MemberKeys(session).seen_by_run(run_ids["nested"], ["ff"])
    path = "manipulated_sequences/X/raw/videos/001_002.mp4"  # the members' sequence, raw

    def keys(fmt: str, **given: object) -> VideoKeys:
        fields = {"compression": None, "split": "test", "identity_group": None, **given}
        return VideoKeys(10**6, None, 10**6, fmt, path, **fields)  # type: ignore[arg-type]

    assert seen.leak_of(keys("ffpp", compression="raw")) == Leak.SEQUENCE
    assert seen.leak_of(keys("ffpp", identity_group="g1")) == Leak.IDENTITY
    assert seen.leak_of(keys("ffpp", target_identity="p2")) == Leak.IDENTITY
    # The same names in another format are other sequences and other people.
    assert seen.leak_of(keys("dfdc", compression="raw", identity_group="g1")) is None
    assert seen.leak_of(keys("folder", target_identity="p2")) is None
    assert seen.leak_of(keys("ffpp")) is None
