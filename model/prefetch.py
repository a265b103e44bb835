"""Decode the next videos while the current one runs through the networks (model layer).

Decoding a video means decoding every frame up to its last sampled one (see
`model.faces.read_frames`): about 0.5 s for a 720p clip on one core, the whole budget of
a GPU extractor. OpenCV releases the GIL while it decodes, so threads are enough to run
it beside the networks; `ahead` bounds how many decoded videos wait in memory (about
200 MB each for 32 full-HD frames).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from model.faces import DecodedVideo, decode_video

PathLike = str | os.PathLike[str]


class FramePrefetcher:
    """Decodes the sampled frames of videos in the order they will be asked for.

    Use it as a context manager: `schedule` the paths, then `take` each in turn; `take`
    of a path that was not scheduled (or was dropped) decodes it on the spot, so callers
    may skip videos freely. Errors (e.g. `UnreadableVideo`) are raised by `take`, as
    `decode_video` would raise them.

    Args:
        num_samples: frames sampled per video (T).
        workers: decoding threads; 0 decodes in the caller's thread, on demand.
        ahead: videos decoded or decoding beyond the one being taken.
    """

    def __init__(self, num_samples: int, *, workers: int = 1, ahead: int = 1) -> None:
        self.num_samples = num_samples
        self.ahead = max(ahead, workers) if workers else 0
        self._pool = ThreadPoolExecutor(workers, "ddm-decode") if workers else None
        self._waiting: deque[PathLike] = deque()
        self._running: dict[str, Future[DecodedVideo]] = {}

    def __enter__(self) -> FramePrefetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def schedule(self, paths: Iterable[PathLike]) -> None:
        """Queue these paths for decoding, in the order they will be taken (without
        decoding threads there is nothing to queue: `take` decodes on the spot)."""
        if self._pool is not None:
            self._waiting.extend(paths)
            self._top_up()

    def take(self, path: PathLike) -> DecodedVideo:
        """The decoded frames of `path`, waiting for them if they are still decoding.

        Videos scheduled before `path` and not taken are dropped: the caller skipped them.
        """
        future = self._skip_to(os.fspath(path))
        self._top_up()
        if future is None:
            return decode_video(path, self.num_samples)
        return future.result()

    def close(self) -> None:
        """Drop what was not taken and stop the threads."""
        self._waiting.clear()
        for future in self._running.values():
            future.cancel()
        self._running.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _skip_to(self, key: str) -> Future[DecodedVideo] | None:
        if key in self._running:
            for other in list(self._running):
                future = self._running.pop(other)
                if other == key:
                    return future
                future.cancel()
        if key in (os.fspath(path) for path in self._waiting):
            for future in self._running.values():
                future.cancel()
            self._running.clear()
            while os.fspath(self._waiting.popleft()) != key:
                pass
        return None

    def _top_up(self) -> None:
        while self._pool is not None and self._waiting and len(self._running) < self.ahead:
            path = self._waiting.popleft()
            self._running[os.fspath(path)] = self._pool.submit(decode_video, path, self.num_samples)
