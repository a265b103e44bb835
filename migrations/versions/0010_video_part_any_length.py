"""`videos.part` takes a folder name of any length.

It held 64 characters: a DFDC labelled set in a longer folder ended as a database error
on PostgreSQL (SQLite does not enforce the length). Text on both.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.alter_column(
            "part", existing_type=sa.String(length=64), type_=sa.Text(), existing_nullable=True
        )


def downgrade() -> None:
    # Names longer than 64 characters are cut to fit the old column, not lost with their row.
    op.execute(sa.text("UPDATE videos SET part = substr(part, 1, 64) WHERE length(part) > 64"))
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.alter_column(
            "part", existing_type=sa.Text(), type_=sa.String(length=64), existing_nullable=True
        )
