"""Report figures as PNG files, rendered headless with matplotlib's Agg backend (model
layer): confusion matrices, ROC curves, training curves, style-flow patterns of real and
fake videos, and the per-video timeline of style flow and attention.

Every function renders into memory, writes the file atomically (a crash never leaves a
half-written PNG where a report expects one) and closes its figure, so long-running
workers do not accumulate open figures. Each returns the path it wrote.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

# Before pyplot is imported: workers have no display, and Agg needs none.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ddm.fs import atomic_write  # noqa: E402
from model.metrics import CLASS_NAMES, roc_auc, roc_curve  # noqa: E402

logger = logging.getLogger(__name__)

DPI = 120
REAL_COLOR, FAKE_COLOR = "tab:blue", "tab:red"
# pyplot keeps its figures in one global registry, and `ddm serve` draws from a pool of
# threads (a page's figures, an upload's timeline): one figure is drawn at a time.
PYPLOT_LOCK = threading.RLock()
# Frame-source letters of the face pipeline and how the timeline marks them.
SOURCE_MARKS = {"f": ("red", 0.25, "fallback frame"), "i": ("orange", 0.12, "interpolated")}


@contextlib.contextmanager
def _new_figure(rows: int = 1, **kwargs: Any) -> Iterator[tuple[Figure, list[Axes]]]:
    """A figure with `rows` stacked panels, closed on leaving even when drawing fails."""
    with PYPLOT_LOCK:
        fig, axes = plt.subplots(rows, 1, squeeze=False, **kwargs)
        try:
            yield fig, list(axes[:, 0])
        finally:
            plt.close(fig)


def _save(fig: Figure, path: str | Path) -> Path:
    """Render `fig` to PNG in memory, then write it atomically to `path`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    target = Path(path)
    with atomic_write(target) as handle:
        handle.write(buffer.getvalue())
    return target


def confusion_figure(path: str | Path, confusion: Mapping[str, int], title: str) -> Path:
    """A 2x2 confusion matrix with counts: rows true (real, fake), columns predicted.

    Args:
        path: where the PNG goes.
        confusion: {"tn", "fp", "fn", "tp"} counts.
        title: figure title.
    """
    matrix = np.array(
        [[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]], dtype=np.int64
    )
    with _new_figure(figsize=(4, 3.6)) as (fig, (ax,)):
        _draw_confusion(fig, ax, matrix, title)
        return _save(fig, path)


def _draw_confusion(fig: Figure, ax: Axes, matrix: np.ndarray, title: str) -> None:
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    # Dark text on light cells and light text on dark ones, so every count stays legible.
    cutoff = matrix.max() / 2 if matrix.max() else 1
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > cutoff else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color, fontsize=12)
    ax.set_xticks([0, 1], CLASS_NAMES)
    ax.set_yticks([0, 1], CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def roc_figure(
    path: str | Path,
    curves: Sequence[tuple[str, Sequence[int] | np.ndarray, Sequence[float] | np.ndarray]],
    title: str,
) -> Path:
    """ROC curves, one line per (name, labels, scores) entry, with AUCs in the legend.

    Entries without both classes have no ROC curve; they are listed in the legend as
    skipped rather than drawn.
    """
    with _new_figure(figsize=(4.8, 4.5)) as (fig, (ax,)):
        _draw_roc(ax, curves, title)
        return _save(fig, path)


def _draw_roc(
    ax: Axes,
    curves: Sequence[tuple[str, Sequence[int] | np.ndarray, Sequence[float] | np.ndarray]],
    title: str,
) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for name, labels, scores in curves:
        if len(np.unique(np.asarray(labels))) < 2:
            # An invisible line only to carry the note into the legend.
            ax.plot([], [], linestyle="none", label=f"{name}: skipped (one class)")
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, linewidth=1.5, label=f"{name} (AUC {roc_auc(labels, scores):.3f})")
    # A hair beyond [0, 1] so curves running along the frame stay visible.
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate (real called fake)")
    ax.set_ylabel("true positive rate (fake caught)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")


def _series(epochs: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    # Missing values become NaN, which matplotlib draws as a gap in the line.
    return np.array([np.nan if e.get(key) is None else e[key] for e in epochs], dtype=np.float64)


def _plot_pair(ax: Axes, x: np.ndarray, epochs: Sequence[Mapping[str, Any]], what: str) -> None:
    for split in ("train", "val"):
        values = _series(epochs, f"{split}_{what}")
        if not np.isnan(values).all():
            ax.plot(x, values, marker="o", markersize=3, label=split)
    ax.set_ylabel(what)
    if ax.get_lines():
        ax.legend(fontsize="small")


def training_curves_figure(
    path: str | Path, epochs: Sequence[Mapping[str, Any]], title: str
) -> Path:
    """Loss, accuracy and learning rate per epoch, in three stacked panels.

    Args:
        path: where the PNG goes.
        epochs: one dict per epoch with epoch, train_loss, val_loss, train_accuracy,
            val_accuracy and learning_rate; any value may be None (drawn as a gap).
        title: figure title.
    """
    with _new_figure(3, sharex=True, figsize=(6, 7)) as (fig, axes):
        _draw_training(axes, epochs, title)
        return _save(fig, path)


def _draw_training(axes: list[Axes], epochs: Sequence[Mapping[str, Any]], title: str) -> None:
    loss_ax, acc_ax, lr_ax = axes
    x = _series(epochs, "epoch")
    _plot_pair(loss_ax, x, epochs, "loss")
    _plot_pair(acc_ax, x, epochs, "accuracy")
    learning_rate = _series(epochs, "learning_rate")
    lr_ax.plot(x, learning_rate, marker="o", markersize=3, color="tab:green")
    known = learning_rate[np.isfinite(learning_rate)]
    if len(known) and (known > 0).all():
        lr_ax.set_yscale("log")  # schedules span decades; a log axis shows their shape
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("epoch")
    lr_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set_title(title)


def _mean_and_std(magnitudes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    # Videos differ in length: pad with NaN so each step averages the videos that have it.
    rows = [np.asarray(m, dtype=np.float64).ravel() for m in magnitudes]
    rows = [row for row in rows if len(row)]
    if not rows:
        return None
    padded = np.full((len(rows), max(len(row) for row in rows)), np.nan)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row
    return np.nanmean(padded, axis=0), np.nanstd(padded, axis=0)


def style_pattern_figure(
    path: str | Path, real: Sequence[np.ndarray], fake: Sequence[np.ndarray], title: str
) -> Path:
    """Mean ± std of the style-flow magnitude per time step, real against fake videos.

    Args:
        path: where the PNG goes.
        real: one (T-1,) flow-magnitude array per real video (lengths may differ).
        fake: the same for fake videos. An empty group is left out.
        title: figure title.
    """
    with _new_figure(figsize=(7, 3.6)) as (fig, (ax,)):
        _draw_patterns(ax, real, fake, title)
        return _save(fig, path)


def _draw_patterns(
    ax: Axes, real: Sequence[np.ndarray], fake: Sequence[np.ndarray], title: str
) -> None:
    for name, group, color in (("real", real, REAL_COLOR), ("fake", fake, FAKE_COLOR)):
        stats = _mean_and_std(group)
        if stats is None:
            continue
        mean, std = stats
        steps = np.arange(1, len(mean) + 1)
        ax.plot(steps, mean, color=color, label=f"{name} (n={len(group)})")
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("frame step")
    ax.set_ylabel("style-flow magnitude")
    ax.set_title(title)
    if ax.get_lines():
        ax.legend(fontsize="small")


def _mark_sources(ax: Axes, frame_sources: str) -> None:
    # One span per marked frame, centred on it; the label goes on the first span only.
    labelled: set[str] = set()
    for frame, letter in enumerate(frame_sources):
        if letter not in SOURCE_MARKS:
            continue
        color, alpha, label = SOURCE_MARKS[letter]
        ax.axvspan(
            frame - 0.5,
            frame + 0.5,
            color=color,
            alpha=alpha,
            linewidth=0,
            label=None if letter in labelled else label,
        )
        labelled.add(letter)


def timeline_figure(
    path: str | Path,
    flow_magnitude: np.ndarray,
    attention: np.ndarray | None,
    frame_sources: str,
    title: str,
    score: float,
) -> Path:
    """One video over time: style-flow magnitude and where the content clips attend.

    The x axis counts frames; step k of the flow (from frame k to k+1) sits between
    them at k + 0.5, so a jump next to a fallback frame lines up with its red span.

    Args:
        path: where the PNG goes.
        flow_magnitude: (T-1,) style-flow norms per step.
        attention: (N, T-1) attention weights of each clip on each step, or None to
            draw the top panel only.
        frame_sources: one letter per frame: "d" detected, "i" interpolated, "f" fallback.
        title: figure title; P(fake) is appended.
        score: the model's probability of fake.
    """
    magnitude = np.asarray(flow_magnitude, dtype=np.float64)
    weights = None if attention is None else np.asarray(attention, dtype=np.float64)
    if weights is not None and (weights.ndim != 2 or weights.shape[1] != len(magnitude)):
        raise ValueError(
            f"attention must be (clips, {len(magnitude)} steps), got shape {weights.shape}"
        )
    panels = 1 if weights is None else 2
    with _new_figure(panels, sharex=True, figsize=(8, 2.4 * panels + 0.6)) as (fig, axes):
        top = axes[0]
        _draw_flow(top, magnitude, frame_sources, f"{title} (P(fake) = {score:.3f})")
        if weights is not None:
            _attention_panel(fig, axes, weights)
        axes[-1].set_xlabel("frame")
        top.set_xlim(-0.5, max(len(magnitude), len(frame_sources) - 1) + 0.5)
        return _save(fig, path)


def _draw_flow(ax: Axes, magnitude: np.ndarray, frame_sources: str, title: str) -> None:
    _mark_sources(ax, frame_sources)
    ax.plot(np.arange(len(magnitude)) + 0.5, magnitude, color="black", linewidth=1)
    ax.set_ylabel("style-flow magnitude")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="upper right")
    ax.set_title(title)


def _attention_panel(fig: Figure, axes: list[Axes], attention: np.ndarray) -> None:
    # Column k covers [k, k+1]: the step between frames k and k+1, as in the top panel.
    clips, steps = attention.shape
    ax = axes[-1]
    image = ax.imshow(
        attention,
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
        extent=(0, steps, clips - 0.5, -0.5),
    )
    ax.set_yticks(range(clips))
    ax.set_ylabel("content clip")
    # The colour bar takes its width from both panels alike, so their frames stay aligned.
    fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.02, label="attention weight")


def segments_figure(
    path: str | Path,
    windows: Sequence[tuple[float, float, float]],
    duration: float,
    threshold: float,
    deciding: int,
    title: str,
) -> Path:
    """A long video's score over time: one bar per window at its P(fake), from its start
    to its end, over the video's length; the deciding window in red, the threshold dashed.

    Args:
        path: where the PNG goes.
        windows: (start s, end s, P(fake)) per window, in order.
        duration: the video's length in seconds.
        threshold: the score from which a window counts as fake.
        deciding: index in `windows` of the window the verdict comes from.
        title: figure title.
    """
    with _new_figure(1, figsize=(8, 2.8)) as (fig, (ax,)):
        for index, (start, end, score) in enumerate(windows):
            chosen = index == deciding
            ax.hlines(
                score,
                start,
                end,
                color=FAKE_COLOR if chosen else "black",
                linewidth=3 if chosen else 1.5,
                alpha=1.0 if chosen else 0.6,
                label="deciding window" if chosen else None,
            )
        centres = [(start + end) / 2 for start, end, _ in windows]
        ax.plot(centres, [score for *_, score in windows], color="grey", linewidth=0.8)
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label="threshold")
        ax.set_xlim(0, max(duration, 1e-6))
        ax.set_ylim(0, 1)
        ax.set_xlabel("seconds")
        ax.set_ylabel("P(fake) of the window")
        ax.set_title(title)
        ax.legend(fontsize="small", loc="upper right")
        return _save(fig, path)


SHEET_COLUMNS = 8  # frames per row of the saliency contact sheet


def saliency_sheet(
    path: str | Path,
    crops: np.ndarray,
    maps: np.ndarray,
    title: str,
    score: float,
    frame_sources: str = "",
) -> Path:
    """Each sampled frame's face crop, and the crop under its saliency map.

    Frames run left to right, eight to a row; each row of crops has its overlays beneath.
    One colour scale serves the whole video (its 99th percentile is full red), so a
    frame that drives the score little stays pale beside one that drives it much.

    Args:
        path: where the PNG goes.
        crops: (T, S, S, 3) uint8 RGB face crops.
        maps: (T, S, S) saliency, >= 0.
        title: figure title; P(fake) is appended.
        score: the model's probability of fake.
        frame_sources: one letter per frame ("f" marks a centre-crop fallback frame).
    """
    if maps.shape != crops.shape[:3]:
        raise ValueError(f"maps must be {crops.shape[:3]} like the crops, got {maps.shape}")
    frames = len(crops)
    columns = min(SHEET_COLUMNS, frames)
    rows = -(-frames // columns)
    scale = float(np.percentile(maps, 99)) or 1.0
    fig, axes = plt.subplots(
        2 * rows, columns, squeeze=False, figsize=(1.3 * columns, 2.7 * rows + 0.4)
    )
    try:
        for ax in axes.flat:
            ax.axis("off")
        for t in range(frames):
            top, bottom = (
                axes[2 * (t // columns), t % columns],
                axes[2 * (t // columns) + 1, t % columns],
            )
            top.imshow(crops[t])
            top.set_title(
                f"{t}{' (fallback)' if frame_sources[t : t + 1] == 'f' else ''}", fontsize=7
            )
            bottom.imshow(crops[t])
            bottom.imshow(np.clip(maps[t] / scale, 0, 1), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        fig.suptitle(f"{title} (P(fake) = {score:.3f}): where the fake score comes from")
        return _save(fig, path)
    finally:
        plt.close(fig)
