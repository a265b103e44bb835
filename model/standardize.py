"""Per-dimension standardisation of the detector's inputs, fitted on the training videos
(model layer).

Content vectors and style flows come on wildly different scales (Slow R50 features with
std about 9; pSp codes with std 0.007 at random weights and frame-to-frame flows of norm
0.001 to 0.003; real weights differ again). Unscaled, the content path drowns the flows
and the detector learns nothing from them. The flows, not the codes, are standardised:
they are what the StyleGRU reads, and a flow is a few percent of a code's spread, so
scaling by the codes' spread would leave the signal as small as it was. The statistics
are buffers of the detector, so a checkpoint carries them into evaluation and `ddm predict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

# A dimension that never varies in the training set is centred, not scaled.
MIN_STD = 1e-12


class InputStandardizer(nn.Module):
    """(x - mean) / std per dimension, for content vectors (D,) and style flows (F,).

    Starts as the identity; `fit` sets the statistics from training batches.
    """

    def __init__(self, content_dim: int, flow_dim: int) -> None:
        super().__init__()
        self.register_buffer("content_mean", torch.zeros(content_dim))
        self.register_buffer("content_std", torch.ones(content_dim))
        self.register_buffer("flow_mean", torch.zeros(flow_dim))
        self.register_buffer("flow_std", torch.ones(flow_dim))
        self.register_buffer("fitted", torch.tensor(False))

    def forward(self, content: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
        """content (B, N, D), flow (B, T-1, F) -> the same, standardised."""
        return (
            (content - self.content_mean) / self.content_std,
            (flow - self.flow_mean) / self.flow_std,
        )

    @torch.no_grad()
    def fit(self, batches: Iterable[Mapping[str, Tensor]]) -> None:
        """Set mean and std from every clip vector and every flow step of `batches`
        ({"content": (B, N, D), "flow": (B, T-1, F)}).

        Sums are taken in float64, one batch at a time, so a large training set is never
        held in memory at once.
        """
        content = _Moments()
        flow = _Moments()
        for batch in batches:
            content.add(batch["content"].flatten(0, 1))  # (B*N, D)
            flow.add(batch["flow"].flatten(0, 1))  # (B*(T-1), F)
        if content.count == 0:
            raise ValueError("cannot fit input statistics on an empty training set")
        self._set(self.content_mean, self.content_std, content)
        self._set(self.flow_mean, self.flow_std, flow)
        self.fitted.fill_(True)

    @staticmethod
    def _set(mean: Tensor, std: Tensor, moments: _Moments) -> None:
        fitted_mean, fitted_std = moments.mean_std()
        mean.copy_(fitted_mean.to(mean.dtype))
        std.copy_(torch.where(fitted_std > MIN_STD, fitted_std, 1.0).to(std.dtype))


class _Moments:
    """Running count, sum and sum of squares over the first axis."""

    def __init__(self) -> None:
        self.count = 0
        self.total: Tensor | None = None
        self.squares: Tensor | None = None

    def add(self, rows: Tensor) -> None:
        rows = rows.detach().to("cpu", torch.float64)
        total, squares = rows.sum(0), (rows * rows).sum(0)
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares
        self.count += len(rows)

    def mean_std(self) -> tuple[Tensor, Tensor]:
        assert self.total is not None and self.squares is not None
        mean = self.total / self.count
        variance = (self.squares / self.count - mean * mean).clamp_min(0)
        return mean, variance.sqrt()
