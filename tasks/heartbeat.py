"""A background heartbeat for a running job (jobs layer).

While a job runs, a thread stamps its row every few seconds and renews its video leases.
When the row says the job is no longer this worker's (cancelled, or handed to another
worker after this one was presumed dead), `lost` is set and the job stops at the next video.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.caches import renew_claims
from ddm.catalog.jobs import heartbeat
from ddm.db import session_scope
from ddm.errors import DdmError

logger = logging.getLogger(__name__)


class Heartbeat:
    """Context manager: beats every `interval` seconds until the block ends."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        job_id: int,
        worker: str,
        interval: float,
        progress: Callable[[], int] | None = None,
    ) -> None:
        self._factory, self._job_id, self._worker = factory, job_id, worker
        self._interval = interval
        # How much of the job is done, stamped with each beat; None leaves it as it is.
        self.progress = progress
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self) -> None:
        """Stamp the row now; sets `lost` when the job is no longer ours."""
        try:
            with session_scope(self._factory) as session:
                if heartbeat(session, self._job_id, self._worker, self._done()):
                    renew_claims(session, self._job_id)
                    return
        except DdmError as exc:
            # A database hiccup must not kill the job; the next beat tries again.
            logger.warning("job_id=%s heartbeat failed: %s", self._job_id, exc)
            return
        logger.info("job_id=%s is no longer held by %s; stopping", self._job_id, self._worker)
        self.lost.set()

    def _done(self) -> int | None:
        return self.progress() if self.progress is not None else None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()
            if self.lost.is_set():
                return
