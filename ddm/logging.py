"""Logging set-up, called by entry points only (catalog layer: plain stdlib logging)."""

from __future__ import annotations

import logging


def configure(level: int = logging.WARNING, handler: logging.Handler | None = None) -> None:
    """Route every `ddm`, `model` and `tasks` logger through one handler at `level`."""
    root = logging.getLogger()
    if handler is None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic", "sqlalchemy", "celery", "kombu", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
