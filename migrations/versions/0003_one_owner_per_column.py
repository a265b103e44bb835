"""Job kinds belong to the job registry; a video's fallback flag belongs to its caches.

The CHECK on jobs.kind is dropped so that a new job kind (tasks/kinds.py) needs no
migration; dispatch refuses a kind it does not know. videos.face_fallback is dropped: the
fallback is a fact of one extractor's output, kept on feature_caches, and was never read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_kind_valid"), type_="check")
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_column("face_fallback")


def downgrade() -> None:
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("face_fallback", sa.Boolean(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_check_constraint(
            batch_op.f("ck_jobs_kind_valid"), "kind IN ('extract', 'train', 'evaluate')"
        )
