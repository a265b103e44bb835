"""Job results, and per-video leases on feature caches.

A lease (claimed_by_job_id, claimed_at) keeps two extraction jobs off the same video;
video_hash records which content the features were extracted from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 02:51:38.641619
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feature_caches", schema=None) as batch_op:
        # Fingerprints of random-weight extractors carry a "random-" prefix.
        batch_op.alter_column(
            "fingerprint", existing_type=sa.String(length=64), type_=sa.String(length=80)
        )
        batch_op.add_column(sa.Column("video_hash", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("claimed_by_job_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_feature_caches_claimed_by_job_id_jobs"),
            "jobs",
            ["claimed_by_job_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            batch_op.f("ix_feature_caches_claimed_by_job_id"), ["claimed_by_job_id"], unique=False
        )

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("result")

    with op.batch_alter_table("feature_caches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_caches_claimed_by_job_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_feature_caches_claimed_by_job_id_jobs"), type_="foreignkey"
        )
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claimed_by_job_id")
        batch_op.drop_column("video_hash")
        batch_op.alter_column(
            "fingerprint", existing_type=sa.String(length=80), type_=sa.String(length=64)
        )
