"""A broker password given as `?password=` reaches kombu the way it reads one, and Celery's
worker banner does not print it."""

from __future__ import annotations

import pytest

from ddm.config import load_settings
from tasks.app import broker_for_kombu, make_app


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("redis://localhost:6379/0?password=hunter2", "redis://:hunter2@localhost:6379/0"),
        ("redis://ann@h:6379/1?password=p%40ss&db=1", "redis://ann:p%40ss@h:6379/1?db=1"),
        ("redis://:kept@h:6379/0", "redis://:kept@h:6379/0"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ],
)
def test_a_query_password_moves_into_the_user_info(given: str, expected: str) -> None:
    assert broker_for_kombu(given) == expected


def test_the_worker_banner_masks_a_query_password(tmp_path) -> None:
    settings = load_settings(
        home=str(tmp_path), broker_url="redis://localhost:6399/0?password=hunter2"
    )
    app = make_app(settings)
    worker = app.Worker(hostname="w@h", quiet=True, pool_cls="solo", concurrency=1)
    banner = worker.startup_info(artlines=False)
    assert "redis://:**@localhost:6399/0" in banner and "hunter2" not in banner
