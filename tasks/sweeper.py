"""The thread that re-submits jobs whose worker vanished, in every worker (jobs layer).

Whatever the broker, a worker killed mid-job leaves its row `running` with a heartbeat
that stops moving. Every worker sweeps at start and then periodically (`sweep_once` in
tasks/lifecycle.py): stale jobs go back to `queued` and are sent again (or fail once they
have used their attempts), and queued jobs that never reached the broker are sent. The
conditional claim makes any duplicate delivery harmless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from ddm.config import Settings
from ddm.errors import DdmError
from tasks.lifecycle import sweep_once

logger = logging.getLogger(__name__)


class Sweeper:
    """A daemon thread running `sweep_once` now and every `settings.sweep_seconds`."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        send: Callable[[list[int]], None],
        queued_messages: Callable[[str], int],
    ) -> None:
        self._settings, self._factory, self._send = settings, factory, send
        self._queued_messages = queued_messages
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
                sweep_once(self._settings, self._factory, self._send, self._queued_messages)
            except DdmError as exc:
                logger.warning("sweep failed, will retry: %s", exc)
            if self._stop.wait(self._settings.sweep_seconds):
                return
