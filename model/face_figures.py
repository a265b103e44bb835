"""Pictures of where the face pipeline looked (model layer): a strip of a video's sampled
frames with each frame's face box and its source, and a thumbnail of one face crop.

Drawn from plain arrays (frames, boxes, source letters) passed in, never from a session,
and written atomically as PNG, as every figure of model/figures.py is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from ddm.fs import atomic_write
from model.figures import PYPLOT_LOCK, _save, plt

# Box colour and word per frame-source letter, as `tasks.extraction.frame_source_letters`
# writes them (the timeline marks fallback red and interpolated orange too).
SOURCE_STYLES = {
    "d": ("limegreen", "detected"),
    "i": ("orange", "interpolated"),
    "f": ("red", "fallback"),
}
STRIP_COLUMNS = 8
THUMBNAIL_SIDE = 96


def face_strip_figure(
    path: str | Path,
    frames: np.ndarray,
    boxes: np.ndarray,
    sources: str,
    frame_indices: Sequence[int],
    title: str,
) -> Path:
    """The sampled frames in rows of up to eight, each with its face box drawn in the
    colour of its source and captioned with its frame number and source.

    Args:
        path: where the PNG goes.
        frames: (T, H, W, 3) uint8 RGB.
        boxes: (T, 4) crop boxes (x0, y0, x1, y1), exclusive of x1 and y1.
        sources: one letter per frame: "d" detected, "i" interpolated, "f" fallback.
        frame_indices: (T,) each sample's frame number in the video.
        title: figure title.
    """
    count = len(frames)
    if not (len(boxes) == len(sources) == len(frame_indices) == count) or count == 0:
        raise ValueError(
            f"{count} frames need as many boxes ({len(boxes)}), sources ({len(sources)}) "
            f"and frame numbers ({len(frame_indices)})"
        )
    columns = min(count, STRIP_COLUMNS)
    rows = math.ceil(count / columns)
    height, width = frames.shape[1:3]
    panel = 1.6
    size = (columns * panel, rows * panel * height / width + 0.5)
    with PYPLOT_LOCK:
        fig, grid = plt.subplots(rows, columns, squeeze=False, figsize=size)
        try:
            for index, ax in enumerate(grid.ravel()):
                ax.set_axis_off()
                if index < count:
                    box, source = boxes[index], sources[index]
                    _draw_frame(ax, frames[index], box, source, frame_indices[index])
            fig.suptitle(title, fontsize="small")
            return _save(fig, path)
        finally:
            plt.close(fig)  # a long-running server must not accumulate open figures


def _draw_frame(ax: Axes, frame: np.ndarray, box: np.ndarray, source: str, number: int) -> None:
    color, word = SOURCE_STYLES.get(source, ("white", source))
    x0, y0, x1, y1 = (float(v) for v in box)
    ax.imshow(frame)
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=1.5))
    ax.set_title(f"{int(number)}: {word}", fontsize=7, color=color)


def face_thumbnail(
    path: str | Path, frame: np.ndarray, box: np.ndarray, side: int = THUMBNAIL_SIDE
) -> Path:
    """The face crop of one frame, `box` cut out and resized to `side` x `side`, as PNG.

    Args:
        frame: (H, W, 3) uint8 RGB.
        box: (x0, y0, x1, y1), exclusive of x1 and y1; clipped to the frame.
    """
    height, width = frame.shape[:2]
    x0, x1 = np.clip([int(box[0]), int(box[2])], 0, width)
    y0, y1 = np.clip([int(box[1]), int(box[3])], 0, height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {list(map(int, box))} lies outside a {width}x{height} frame")
    crop = cv2.resize(frame[y0:y1, x0:x1], (side, side), interpolation=cv2.INTER_AREA)
    return _write_png(path, crop)


def blank_thumbnail(path: str | Path, side: int = THUMBNAIL_SIDE) -> Path:
    """A grey square with a cross: the thumbnail of a video whose frames cannot be read
    (file gone, no face box recorded), the same size as a face crop."""
    tile = np.full((side, side, 3), 200, dtype=np.uint8)
    cv2.line(tile, (0, 0), (side - 1, side - 1), (150, 150, 150), 1)
    cv2.line(tile, (0, side - 1), (side - 1, 0), (150, 150, 150), 1)
    return _write_png(path, tile)


def _write_png(path: str | Path, rgb: np.ndarray) -> Path:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    target = Path(path)
    with atomic_write(target) as handle:
        handle.write(encoded.tobytes())
    return target
