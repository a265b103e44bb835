"""A transient Rich progress bar on stderr, silent when stderr is not a terminal (CLI layer)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cli.app import App


@dataclass
class Bar:
    """`start(total)` once, then `advance(n)`; a no-op when progress is hidden."""

    progress: Any = None
    description: str = ""
    task: Any = field(default=None)

    def start(self, total: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(self.description, total=total)

    def advance(self, steps: int = 1) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, steps)


@contextlib.contextmanager
def progress_bar(app: App, description: str) -> Iterator[Bar]:
    """Yield a Bar drawing on stderr, or a silent one with --quiet or without a terminal."""
    with live_progress(app) as progress:
        yield Bar(progress, description) if progress is not None else Bar()


@contextlib.contextmanager
def live_progress(app: App, *extra_columns: Any) -> Iterator[Any]:
    """A transient Rich Progress on stderr (description, bar, count, time left, then
    `extra_columns`), or None with --quiet or without a terminal."""
    if app.quiet or not app.err.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        *extra_columns,
    )
    with Progress(*columns, console=app.err, transient=True) as progress:
        yield progress
