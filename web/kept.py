"""Documents computed from the whole catalog, kept between requests (web layer).

An evaluation's findings (`tasks.report.evaluation_findings`) read every prediction of the
evaluation and the facts of every video of its datasets, and the datasets page's
statistics (`ddm stats`) every video's facts: seconds at DFDC size. Pages ask for the same
documents again and again while nothing they are computed from has changed, so the app
keeps the last few, each with the catalog's `catalog_stamp` taken when it was computed,
and computes one again once the stamp moves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")
# An evaluation of DFDC keeps its twin's JSON, about 30 MB: a handful at most.
KEPT_DOCUMENTS = 6


class KeptDocuments:
    """The last `KEPT_DOCUMENTS` documents asked for, by key."""

    def __init__(self) -> None:
        self._kept: OrderedDict[Hashable, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()  # handlers run in a thread pool

    def get(self, session: Session, key: Hashable, compute: Callable[[Session], T]) -> T:
        """The document of `key`: `compute(session)` when none is kept, or when the
        catalog changed since it was computed."""
        from ddm.catalog.stamps import catalog_stamp

        stamp = catalog_stamp(session)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0] == stamp:
                self._kept.move_to_end(key)
                return kept[1]  # type: ignore[no-any-return]
        document = compute(session)  # outside the lock: other pages go on meanwhile
        with self._lock:
            self._kept[key] = (stamp, document)
            self._kept.move_to_end(key)
            while len(self._kept) > KEPT_DOCUMENTS:
                self._kept.popitem(last=False)
        return document
