"""Folder names of any length are recorded: a DFDC labelled set in a long folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from ddm.catalog.models import Video
from ddm.db import session_scope
from ddm.services.ingest import ingest_dataset
from tests.conftest import MEDIA

LONG = "dfdc_public_test_set_with_labels_from_the_kaggle_private_leaderboard_release_2020"


def test_a_labelled_set_in_a_long_folder_is_recorded(factory, tmp_path: Path) -> None:
    folder = tmp_path / "dfdc" / LONG
    folder.mkdir(parents=True)
    source = next((MEDIA / "dfdc" / "dfdc_train_part_0").glob("*.mp4"))
    shutil.copyfile(source, folder / "aaaaaaaaaa.mp4")
    (folder / "labels.csv").write_text("filename,label\naaaaaaaaaa.mp4,1\n")
    assert len(LONG) > 64
    report = ingest_dataset(factory, tmp_path / "dfdc", workers=1)
    assert report.counts.new == 1
    with session_scope(factory) as session:
        (video,) = session.scalars(select(Video)).all()
    assert (video.part, video.label) == (LONG, "fake")
