"""Re-submit jobs whose worker vanished (jobs layer).

Whatever the broker, a worker killed mid-job leaves its row `running` with a heartbeat
that stops moving. Every worker sweeps at start and then periodically: stale jobs go back
to `queued` and are sent again (or fail once they have used their attempts), and queued
jobs that never reached the broker are sent. The conditional claim makes any duplicate
delivery harmless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.jobs import requeue_stale_jobs, unsent_jobs
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import DdmError

logger = logging.getLogger(__name__)


def sweep_once(
    settings: Settings,
    factory: sessionmaker[Session],
    send: Callable[[list[int]], None],
) -> list[int]:
    """Requeue stale jobs and send them with any never-sent ones; return the ids sent."""
    stale_after = timedelta(seconds=settings.stale_after_seconds)
    with session_scope(factory) as session:
        requeued, failed = requeue_stale_jobs(
            session, stale_after=stale_after, max_attempts=settings.max_attempts
        )
        unsent = unsent_jobs(session, older_than=stale_after)
    for job_id in failed:
        logger.warning(
            "job_id=%s failed: its worker was lost %d times", job_id, settings.max_attempts
        )
    to_send = sorted(set(requeued) | set(unsent))
    if to_send:
        logger.info("re-submitting jobs %s (worker lost or never sent)", to_send)
        send(to_send)
    return to_send


class Sweeper:
    """A daemon thread running `sweep_once` now and every `settings.sweep_seconds`."""

    def __init__(
        self, settings: Settings, factory: sessionmaker[Session], send: Callable[[list[int]], None]
    ) -> None:
        self._settings, self._factory, self._send = settings, factory, send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ddm-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        logger.info("sweeping for stale jobs every %s s", self._settings.sweep_seconds)
        while True:
            try:
                sweep_once(self._settings, self._factory, self._send)
            except DdmError as exc:
                logger.warning("sweep failed, will retry: %s", exc)
            if self._stop.wait(self._settings.sweep_seconds):
                return
