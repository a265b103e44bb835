"""Report figures: each writes a real PNG atomically and leaves no figure open."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from ddm.fs import TEMP_PREFIX
from model import figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RNG = np.random.default_rng(0)

EPOCHS = [
    {
        "epoch": 1,
        "train_loss": 0.7,
        "val_loss": 0.69,
        "train_accuracy": 0.5,
        "val_accuracy": 0.52,
        "learning_rate": 1e-4,
    },
    {
        "epoch": 2,
        "train_loss": 0.6,
        "val_loss": None,
        "train_accuracy": 0.6,
        "val_accuracy": None,
        "learning_rate": 5e-5,
    },
    {
        "epoch": 3,
        "train_loss": 0.5,
        "val_loss": 0.55,
        "train_accuracy": 0.7,
        "val_accuracy": 0.68,
        "learning_rate": None,
    },
]

# name -> a call writing the figure to the given path
CASES: dict[str, Callable[[Path], Path]] = {
    "confusion": lambda path: figures.confusion_figure(
        path, {"tn": 40, "fp": 3, "fn": 7, "tp": 50}, "test split"
    ),
    "confusion_empty": lambda path: figures.confusion_figure(
        path, {"tn": 0, "fp": 0, "fn": 0, "tp": 0}, "nothing scored"
    ),
    "roc": lambda path: figures.roc_figure(
        path,
        [
            ("ffpp", [0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]),
            ("celebdf", np.array([1, 0, 1]), np.array([0.7, 0.3, 0.2])),
            ("only fakes", [1, 1], [0.4, 0.6]),
        ],
        "ROC",
    ),
    "training": lambda path: figures.training_curves_figure(path, EPOCHS, "run 7"),
    "style_pattern": lambda path: figures.style_pattern_figure(
        path, [RNG.random(15), RNG.random(9)], [RNG.random(12) + 1, RNG.random(15) + 1], "flows"
    ),
    "style_pattern_one_group": lambda path: figures.style_pattern_figure(
        path, [], [RNG.random(12)], "fakes only"
    ),
    "timeline": lambda path: figures.timeline_figure(
        path,
        RNG.random(31),
        RNG.dirichlet(np.ones(31), size=2),
        "d" * 10 + "ff" + "i" * 20,
        "v",
        0.83,
    ),
    "timeline_no_attention": lambda path: figures.timeline_figure(
        path, RNG.random(7), None, "dddfdddd", "v", 0.1
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_is_a_png_written_atomically(tmp_path: Path, name: str) -> None:
    open_before = plt.get_fignums()
    target = tmp_path / "report" / f"{name}.png"
    written = CASES[name](target)
    assert written == target
    data = target.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE)
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert plt.get_fignums() == open_before


def test_a_figure_failing_while_drawing_is_closed_and_writes_nothing(tmp_path: Path) -> None:
    open_before = plt.get_fignums()
    target = tmp_path / "report" / "bad.png"
    with pytest.raises(ValueError, match="finite"):
        figures.roc_figure(target, [("broken", [0, 1], [np.nan, 0.5])], "bad")
    assert not target.exists()
    assert plt.get_fignums() == open_before


def test_timeline_rejects_attention_of_another_length(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="4 steps"):
        figures.timeline_figure(tmp_path / "t.png", np.ones(4), np.ones((2, 5)), "ddddd", "", 0.5)


def test_figures_use_the_headless_backend() -> None:
    assert plt.get_backend().lower() == "agg"
