"""A training request stopped by its splits names the way out: the class missing where,
and `ddm split`."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from ddm.catalog.models import Video
from ddm.db import session_scope
from ddm.errors import InvalidInput
from tasks.training import plan_training
from tests.tasks.synth import QUICK


def test_a_split_with_one_class_names_the_missing_class_and_ddm_split(
    job_settings, factory, synth
) -> None:
    with session_scope(factory) as session:
        session.execute(update(Video).where(Video.split == "val").values(label="real"))

    with pytest.raises(InvalidInput) as stopped:
        plan_training(job_settings, factory, [synth], train_cfg=QUICK, batch_size=4)

    message = str(stopped.value)
    assert f"the val split of {synth} has only real videos" in message
    assert "no fake video in val" in message
    assert f"`ddm split {synth}`" in message
