"""A torch Dataset over cached per-video feature files, given as plain (path, label)
pairs that the tasks layer reads from the catalog (model layer)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from model.errors import IncompatibleFeatures
from model.features import load_features, non_finite_problem

logger = logging.getLogger(__name__)

FeatureItem = tuple[str | os.PathLike[str], float]


class CachedFeatureDataset(Dataset[dict[str, Tensor]]):
    """Feature files and labels (0 real, 1 fake) as detector samples.

    Args:
        items: (cache file path, label) per video; order is kept, so scores from an
            unshuffled loader line up with `items`.
        preload: read every file once up front (a video's features are ~100 KB), which
            avoids re-reading files every epoch.

    Each sample is {"content": (N, 2048), "style": (T, L, 512), "label": ()} floats.
    """

    def __init__(self, items: Sequence[FeatureItem], *, preload: bool = False) -> None:
        self.items = [(str(path), float(label)) for path, label in items]
        if any(label not in (0.0, 1.0) for _, label in self.items):
            raise ValueError("labels must be 0 (real) or 1 (fake)")
        self._cache: dict[int, dict[str, Tensor]] = {}
        if preload:
            self._cache = {index: self._read(index) for index in range(len(self.items))}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self._cache[index] if index in self._cache else self._read(index)

    def non_finite(self) -> list[tuple[int, str]]:
        """(index, what is wrong) of every sample whose content or style holds NaN or inf,
        which would poison any statistic fitted over the set; reads unloaded files."""
        problems = ((index, non_finite_problem(self[index])) for index in range(len(self)))
        return [(index, problem) for index, problem in problems if problem is not None]

    def _read(self, index: int) -> dict[str, Tensor]:
        path, label = self.items[index]
        features = load_features(path)
        return {
            "content": features["content"].float(),
            "style": features["style"].float(),
            "label": torch.tensor(label),
        }


def collate_features(samples: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack samples into a batch, with a clear error when feature shapes differ
    (features from extractors with different T or levels cannot share a batch)."""
    batch: dict[str, Tensor] = {}
    for key in ("content", "style", "label"):
        shapes = {tuple(sample[key].shape) for sample in samples}
        if len(shapes) > 1:
            raise IncompatibleFeatures(
                f"cannot batch {key!r} tensors of different shapes {sorted(shapes)}; "
                f"use features from one extractor configuration"
            )
        batch[key] = torch.stack([sample[key] for sample in samples])
    return batch


def make_loader(
    dataset: Dataset[Any], *, batch_size: int, shuffle: bool, num_workers: int = 0
) -> DataLoader[Any]:
    """A DataLoader yielding {"content", "style", "label"} batches.

    Shuffling draws from torch's global RNG, which `train` seeds from `TrainCfg.seed`
    inside a forked RNG state: one seed fixes the whole run, and reusing a loader for a
    second run repeats the same order.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate_features,
        num_workers=num_workers,
    )
