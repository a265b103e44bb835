"""An evaluation's findings kept between requests (web layer).

`tasks.report.evaluation_findings` reads every prediction of the evaluation and the facts
of every video of its datasets: seconds for DFDC's 115,000. A page asks for the same
findings again and again while nothing they are computed from has changed, so the app
keeps the last few, each with the catalog's `findings_stamp` taken when it was computed,
and computes them again once the stamp moves. What is kept is what the two faces send:
the page's entry with its most wrong predictions only, and the JSON twin's bytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from starlette.responses import JSONResponse

KEPT_EVALUATIONS = 4  # a DFDC evaluation's JSON is about 30 MB


@dataclass(frozen=True)
class Findings:
    """One evaluation's findings as the page and its JSON twin send them.

    Attributes:
        page: the findings with `predictions` cut to the first `shown` (most wrong first).
        predictions: how many predictions the evaluation has in all.
        body: the JSON twin's bytes (every prediction).
    """

    stamp: tuple[Any, ...]
    page: dict[str, Any]
    predictions: int
    body: bytes


class FindingsMemo:
    """The findings of the last `KEPT_EVALUATIONS` evaluations asked for."""

    def __init__(self, shown: int) -> None:
        self.shown = shown
        self._kept: OrderedDict[int, Findings] = OrderedDict()
        self._lock = threading.Lock()  # handlers run in a thread pool

    def get(self, session: Session, evaluation_id: int) -> Findings:
        """The findings, computed again when the catalog changed since they were kept.

        Raises:
            NotFound: no such evaluation.
        """
        from ddm.catalog.stamps import findings_stamp

        stamp = findings_stamp(session)
        with self._lock:
            kept = self._kept.get(evaluation_id)
            if kept is not None and kept.stamp == stamp:
                self._kept.move_to_end(evaluation_id)
                return kept
        kept = self._compute(session, evaluation_id, stamp)
        with self._lock:
            self._kept[evaluation_id] = kept
            self._kept.move_to_end(evaluation_id)
            while len(self._kept) > KEPT_EVALUATIONS:
                self._kept.popitem(last=False)
        return kept

    def _compute(self, session: Session, evaluation_id: int, stamp: tuple[Any, ...]) -> Findings:
        from tasks.report import evaluation_findings

        entry = evaluation_findings(session, evaluation_id)
        body = JSONResponse(entry).body  # the bytes a JSONResponse of the entry sends
        page = {**entry, "predictions": entry["predictions"][: self.shown]}
        return Findings(stamp, page, len(entry["predictions"]), body)
