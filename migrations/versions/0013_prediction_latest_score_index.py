"""Predictions indexed by video, evaluation and score: a video's latest score from the index.

`ddm serve`'s video table sorts by each video's latest score (its prediction by the newest
evaluation that scored it), a correlated lookup per matching video. Through the index on
the video alone every lookup read each of the video's predictions from the table; at DFDC
size (130,000 videos, 1,000,000 predictions, SQLite) a page sorted that way took 1.26 s
and one 100,000 deep 1.60 s. With (video_id, evaluation_id, score) the newest evaluation and
its score are read from the index alone: 0.22 s and 0.47 s (`bench/video_table.py`). It
replaces the index on video_id, its prefix, which every other reader of predictions by
video (the bias statistics, the leakage guard) uses as before.

Building it reads every prediction once: seconds at a million rows, on either dialect.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 19:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_predictions_video_id_evaluation_id_score"),
            ["video_id", "evaluation_id", "score"],
            unique=False,
        )
        batch_op.drop_index(batch_op.f("ix_predictions_video_id"))


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_predictions_video_id"), ["video_id"], unique=False)
        batch_op.drop_index(batch_op.f("ix_predictions_video_id_evaluation_id_score"))
