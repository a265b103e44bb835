"""Each video's latest score stored on its row, indexed for the video table's order.

A video's latest score is its prediction by the newest evaluation (highest id) that scored
it. `ddm serve`'s video table sorts and filters by it; computed per request, ordering
DFDC's 130,000 videos by it looked up every one of them (500 ms p50, 725 ms p95 on
PostgreSQL at 1,171,000 predictions, `bench/serve.py`). `record_evaluation` now keeps
`latest_score` and `latest_evaluation_id` on the video, in the transaction that stores
the predictions; this migration fills them from the stored predictions, in one
statement. Two indexes serve the table's order, both ending in the id (its tie-break):
(latest_score, id) ascending and (latest_score DESC, id) descending.

`latest_evaluation_id` is no foreign key: SQLite adds a column with one only by copying
the table, and dropping the old copy would fire the ON DELETE CASCADE of every table that
references videos (their caches, predictions and run members would go). The columns are
added in place on both dialects (SQLite 3.35 or later to drop them again).

The fill reads every prediction once through its (video_id, evaluation_id, score) index
and writes each scored video once: seconds at a million predictions on either dialect.
If it is interrupted, the transaction rolls back and `ddm db upgrade` starts again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each scored video's prediction by its newest evaluation: the pair (video_id,
# evaluation_id) is unique, so one row per video. UPDATE ... FROM: PostgreSQL, SQLite 3.33+.
FILL = """
UPDATE videos
SET latest_evaluation_id = newest.evaluation_id, latest_score = newest.score
FROM (
    SELECT predictions.video_id, predictions.evaluation_id, predictions.score
    FROM predictions
    JOIN (
        SELECT video_id, max(evaluation_id) AS evaluation_id
        FROM predictions
        GROUP BY video_id
    ) AS last
    ON predictions.video_id = last.video_id AND predictions.evaluation_id = last.evaluation_id
) AS newest
WHERE videos.id = newest.video_id
"""


def upgrade() -> None:
    # Not in batch mode: on SQLite that copies the table (see the docstring).
    op.add_column("videos", sa.Column("latest_score", sa.Float(), nullable=True))
    op.add_column("videos", sa.Column("latest_evaluation_id", sa.Integer(), nullable=True))
    op.execute(sa.text(FILL))
    op.create_index("ix_videos_latest_score_id", "videos", ["latest_score", "id"])
    op.create_index(
        "ix_videos_latest_score_desc_id", "videos", [sa.text("latest_score DESC"), "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_videos_latest_score_desc_id", table_name="videos")
    op.drop_index("ix_videos_latest_score_id", table_name="videos")
    op.drop_column("videos", "latest_evaluation_id")
    op.drop_column("videos", "latest_score")
