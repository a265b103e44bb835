"""`ddm predict --stream SOURCE`: a live source scored window by window as it plays, with a
run's extractor and detector (jobs layer; the queue and its drop policy are in
`model.stream`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from model.errors import UnreadableVideo
from tasks.segments import WindowSpec, window_json

# Sampled frames the queue holds: two windows' worth at the run's T. Enough to ride out a
# slow window; more would only make the scores later, not more.
QUEUE_WINDOWS = 2


def predict_stream(
    predictor: Any, source: str, spec: WindowSpec, on_window: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Score `source` window by window, handing each window (as `ddm predict --segments`
    gives it, plus `latency`: seconds from the window's last frame to its score) to
    `on_window` as soon as it is scored.

    Returns:
        The stream's summary (`model.stream.summary_json`, `unfinished_seconds` added).

    Raises:
        UnreadableVideo: the source cannot be opened, has no frame rate, yields no frame,
            or fails while it is read.
    """
    from model.stream import open_source, score_stream, summary_json

    extractor = predictor.file_extractor()  # built before the source plays
    opened = open_source(source)

    def emit(live: Any) -> None:
        on_window({**window_json(live.scored, opened.fps), "latency": live.latency})

    try:
        summary = score_stream(
            opened.frames,
            opened.fps,
            extractor,
            predictor.model,
            spec.window_seconds,
            spec.stride_seconds,
            emit,
            num_video_frames=opened.num_video_frames,
            lossless=opened.is_file,
            queue_frames=QUEUE_WINDOWS * extractor.cfg.num_frames,
            device=next(predictor.model.parameters()).device,
        )
    finally:
        opened.release()
    if summary.frames_read == 0:
        raise UnreadableVideo(f"stream {source!r} ended before its first frame")
    document = summary_json(summary)
    document["unfinished_seconds"] = summary.unfinished_frames / opened.fps
    document["source_is_file"] = opened.is_file
    return document
