"""Per-frame face-box sources on feature caches: detected, interpolated or fallback.

Face crops now follow one tracked face; a frame where that face was not detected takes a
box interpolated along its track. `interpolated_frames` counts them beside
`fallback_frames` (centre crops), and `frame_sources` spells every sampled frame's source
as one letter (d, i, f), in frame order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feature_caches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("interpolated_frames", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("frame_sources", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feature_caches", schema=None) as batch_op:
        batch_op.drop_column("frame_sources")
        batch_op.drop_column("interpolated_frames")
