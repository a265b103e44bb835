"""Documents computed from the whole catalog, kept between requests (web layer).

An evaluation's findings (`tasks.report.evaluation_findings`) read every prediction of the
evaluation and the facts of every video of its datasets, and the datasets page's
statistics (`ddm stats`) every video's facts: seconds at DFDC size. Pages ask for the same
documents again and again while nothing they are computed from has changed, so the app
keeps the last few, each with the catalog's `catalog_stamp` taken when it was computed,
and computes one again once the stamp moves.

A kept document is never served stale: a view after a change waits for the new one. So
that the view rarely waits, `Refresher` computes the kept documents again in the
background once the catalog has settled after a change (and computes the first ones when
the server starts); a view that comes while one is being computed waits for that
computation instead of starting its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

T = TypeVar("T")
Compute = Callable[[Session], Any]
# An evaluation of DFDC keeps its twin's JSON, about 30 MB: a handful at most.
KEPT_DOCUMENTS = 6


class KeptDocuments:
    """The last `KEPT_DOCUMENTS` documents asked for, by key, each with how to compute it."""

    def __init__(self) -> None:
        # key -> (stamp, document, compute)
        self._kept: OrderedDict[Hashable, tuple[Any, Any, Compute]] = OrderedDict()
        self._computing: dict[tuple[Hashable, Any], Future[Any]] = {}
        self._lock = threading.Lock()  # handlers run in a thread pool, the refresher beside

    def get(self, session: Session, key: Hashable, compute: Callable[[Session], T]) -> T:
        """The document of `key`: `compute(session)` when none is kept, or when the
        catalog changed since it was computed; the computation in flight when another
        view (or the refresher) is computing it for the same catalog."""
        from ddm.catalog.stamps import catalog_stamp

        stamp = catalog_stamp(session)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0] == stamp:
                self._kept.move_to_end(key)
                return kept[1]  # type: ignore[no-any-return]
            flight = self._computing.get((key, stamp))
            owner = flight is None
            if owner:
                flight = self._computing[(key, stamp)] = Future()
        if not owner:
            return flight.result()  # type: ignore[no-any-return]
        try:
            document = compute(session)  # outside the lock: other pages go on meanwhile
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._computing.pop((key, stamp), None)
        self._keep(key, stamp, document, compute)
        flight.set_result(document)
        return document

    def stale(self, stamp: Any) -> list[tuple[Hashable, Compute]]:
        """The kept documents computed before `stamp`, the most recently viewed first."""
        with self._lock:
            entries = [(key, kept[2]) for key, kept in self._kept.items() if kept[0] != stamp]
        return entries[::-1]

    def _keep(self, key: Hashable, stamp: Any, document: Any, compute: Compute) -> None:
        with self._lock:
            self._kept[key] = (stamp, document, compute)
            self._kept.move_to_end(key)
            while len(self._kept) > KEPT_DOCUMENTS:
                self._kept.popitem(last=False)


class Refresher:
    """Computes kept documents in the background: `first` ones at start, then again every
    kept one the catalog has moved past, once its stamp has stayed still for `settle_s`
    (a running extraction moves it every few seconds: recomputing on each move would only
    compete with the extraction for the cores, and views still compute on demand)."""

    def __init__(
        self,
        kept: KeptDocuments,
        factory: sessionmaker[Session],
        first: Callable[[Session], Iterable[tuple[Hashable, Compute]]],
        *,
        poll_s: float = 2.0,
        settle_s: float = 4.0,
    ) -> None:
        self.kept = kept
        self.factory = factory
        self.first = first
        self.poll_s = poll_s
        self.settle_s = settle_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ddm-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll_s + 1)

    def warm(self) -> int:
        """Compute the `first` documents; how many were computed."""
        with self._session() as session:
            wanted = list(self.first(session))
        return self._compute(wanted)

    def refresh(self, stamp: Any = None) -> int:
        """Compute again every kept document the catalog (at `stamp`, read now when None)
        moved past; how many were."""
        return self._compute(self.kept.stale(self._stamp() if stamp is None else stamp))

    def _loop(self) -> None:
        self._guarded(self.warm)
        seen, still_since = None, time.monotonic()
        while not self._stop.wait(self.poll_s):
            stamp = self._guarded(self._stamp)
            if stamp != seen:  # moved (or unreadable): wait until it settles
                seen, still_since = stamp, time.monotonic()
            elif stamp is not None and time.monotonic() - still_since >= self.settle_s:
                self._guarded(partial(self.refresh, stamp))

    def _compute(self, wanted: list[tuple[Hashable, Compute]]) -> int:
        for key, compute in wanted:
            if self._stop.is_set():
                break
            with self._session() as session:
                started = time.perf_counter()
                self.kept.get(session, key, compute)  # as a view asks, so views join it
            logger.info("kept %s computed in %.1f s", key, time.perf_counter() - started)
        return len(wanted)

    def _stamp(self) -> Any:
        from ddm.catalog.stamps import catalog_stamp

        with self._session() as session:
            return catalog_stamp(session)

    def _session(self) -> Any:
        from ddm.db import session_scope

        return session_scope(self.factory)

    def _guarded(self, step: Callable[[], T]) -> T | None:
        """A failed step is logged, not fatal: the views compute what they need anyway."""
        try:
            return step()
        except Exception:
            logger.exception("refreshing kept documents failed")
            return None
