"""Initial catalog: datasets, videos, feature caches, jobs, runs, evaluations, predictions.

Hand-checked draft of autogenerate; frozen history, so it never imports ddm.catalog.models.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 02:43:35.977157
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("root_path", sa.Text(), nullable=False),
        sa.Column("video_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("real_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("fake_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("missing_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unreadable_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("listed_missing_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("celery_task_id", sa.String(length=64), nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("progress_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "kind IN ('extract', 'train', 'evaluate')", name=op.f("ck_jobs_kind_valid")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_jobs_status_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_kind_status"), ["kind", "status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_jobs_status_heartbeat_at"), ["status", "heartbeat_at"], unique=False
        )

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("checkpoint_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_runs_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_runs_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("name", name=op.f("uq_runs_name")),
    )
    op.create_table(
        "videos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=True),
        sa.Column("hash_method", sa.String(length=16), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mtime", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=8), nullable=True),
        sa.Column("raw_label", sa.String(length=32), nullable=True),
        sa.Column("split", sa.String(length=8), nullable=True),
        sa.Column("split_source", sa.String(length=16), nullable=True),
        sa.Column("method", sa.String(length=64), nullable=True),
        sa.Column("compression", sa.String(length=8), nullable=True),
        sa.Column("target_identity", sa.String(length=128), nullable=True),
        sa.Column("source_identity", sa.String(length=128), nullable=True),
        sa.Column("identity_group", sa.String(length=128), nullable=True),
        sa.Column("part", sa.String(length=64), nullable=True),
        sa.Column("original_video_id", sa.Integer(), nullable=True),
        sa.Column("frame_count", sa.Integer(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("probe_status", sa.String(length=16), nullable=False),
        sa.Column("probe_error", sa.Text(), nullable=True),
        sa.Column("metadata_error", sa.Text(), nullable=True),
        sa.Column("face_fallback", sa.Boolean(), nullable=True),
        sa.Column("is_present", sa.Boolean(), server_default="1", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "compression IS NULL OR compression IN ('raw', 'c23', 'c40')",
            name=op.f("ck_videos_compression_valid"),
        ),
        sa.CheckConstraint(
            "label IS NULL OR label IN ('real', 'fake')", name=op.f("ck_videos_label_valid")
        ),
        sa.CheckConstraint(
            "split IS NULL OR split IN ('train', 'val', 'test')", name=op.f("ck_videos_split_valid")
        ),
        sa.CheckConstraint(
            "split_source IS NULL OR split_source IN ('official', 'derived')",
            name=op.f("ck_videos_split_source_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_videos_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["original_video_id"],
            ["videos.id"],
            name=op.f("fk_videos_original_video_id_videos"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_videos")),
        sa.UniqueConstraint("dataset_id", "path", name=op.f("uq_videos_dataset_id_path")),
    )
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_videos_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_videos_dataset_id_label_split"),
            ["dataset_id", "label", "split"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_videos_original_video_id"), ["original_video_id"], unique=False
        )

    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=8), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "split IS NULL OR split IN ('train', 'val', 'test')",
            name=op.f("ck_evaluations_split_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_evaluations_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_evaluations_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_evaluations_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evaluations_dataset_id_split"), ["dataset_id", "split"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_evaluations_run_id"), ["run_id"], unique=False)

    op.create_table(
        "feature_caches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("is_valid", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("frames_sampled", sa.Integer(), nullable=True),
        sa.Column("faces_detected", sa.Integer(), nullable=True),
        sa.Column("fallback_frames", sa.Integer(), nullable=True),
        sa.Column("face_fallback", sa.Boolean(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_feature_caches_video_id_videos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_caches")),
        sa.UniqueConstraint(
            "video_id", "fingerprint", name=op.f("uq_feature_caches_video_id_fingerprint")
        ),
    )
    with op.batch_alter_table("feature_caches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feature_caches_fingerprint_is_valid"),
            ["fingerprint", "is_valid"],
            unique=False,
        )

    op.create_table(
        "run_epochs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("train_accuracy", sa.Float(), nullable=True),
        sa.Column("val_loss", sa.Float(), nullable=True),
        sa.Column("val_accuracy", sa.Float(), nullable=True),
        sa.Column("learning_rate", sa.Float(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_epochs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_epochs")),
        sa.UniqueConstraint("run_id", "epoch", name=op.f("uq_run_epochs_run_id_epoch")),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("predicted_label", sa.String(length=8), nullable=False),
        sa.CheckConstraint(
            "predicted_label IN ('real', 'fake')", name=op.f("ck_predictions_predicted_label_valid")
        ),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluations.id"],
            name=op.f("fk_predictions_evaluation_id_evaluations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_predictions_video_id_videos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint(
            "evaluation_id", "video_id", name=op.f("uq_predictions_evaluation_id_video_id")
        ),
    )
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_predictions_video_id"), ["video_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_predictions_video_id"))

    op.drop_table("predictions")
    op.drop_table("run_epochs")
    with op.batch_alter_table("feature_caches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_caches_fingerprint_is_valid"))

    op.drop_table("feature_caches")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluations_run_id"))
        batch_op.drop_index(batch_op.f("ix_evaluations_dataset_id_split"))

    op.drop_table("evaluations")
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_videos_original_video_id"))
        batch_op.drop_index(batch_op.f("ix_videos_dataset_id_label_split"))
        batch_op.drop_index(batch_op.f("ix_videos_content_hash"))

    op.drop_table("videos")
    op.drop_table("runs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_status_heartbeat_at"))
        batch_op.drop_index(batch_op.f("ix_jobs_kind_status"))

    op.drop_table("jobs")
    op.drop_table("datasets")
