"""An index on feature caches by recency, for "the newest valid cache" of a dataset.

`ddm videos` shows the caches of the extractor used last (`latest_fingerprint`): newest
valid cache first, limit 1. At DFDC size (130,000 caches) PostgreSQL sorted every valid
cache for that one row (an external merge on disk, 200 ms); with this index it walks them
newest first and stops at the first of the dataset (105 ms where another dataset's caches
are newer, less otherwise). The other queries of the catalog's measured commands read
whole datasets (EXPLAIN at 130,000 videos and 1.17 million predictions shows sequential
scans and hash joins that no index would beat) or already use an index; they get none.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 14:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feature_caches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feature_caches_updated_at_id"), ["updated_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("feature_caches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_caches_updated_at_id"))
