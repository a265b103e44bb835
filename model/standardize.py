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

# A dimension whose spread is below this fraction of the typical (median) spread of its
# input is scaled as if it had that much: an absolute floor let a nearly constant
# dimension be multiplied by up to 1e12, and any shift of another dataset blew up.
MIN_RELATIVE_STD = 1e-2
# Standardised values are clipped to this range, so that features far outside the
# training distribution (another dataset, another extractor) stay bounded; this also
# bounds checkpoints whose statistics were fitted before the relative floor.
CLIP = 10.0


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
            ((content - self.content_mean) / self.content_std).clamp(-CLIP, CLIP),
            ((flow - self.flow_mean) / self.flow_std).clamp(-CLIP, CLIP),
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
        for name, moments in (("content vectors", content), ("style flows", flow)):
            if not moments.is_finite():
                raise ValueError(f"cannot fit input statistics: the {name} hold non-finite values")
        self._set(self.content_mean, self.content_std, content)
        self._set(self.flow_mean, self.flow_std, flow)
        self.fitted.fill_(True)

    @staticmethod
    def _set(mean: Tensor, std: Tensor, moments: _Moments) -> None:
        fitted_mean, fitted_std = moments.mean_std()
        mean.copy_(fitted_mean.to(mean.dtype))
        std.copy_(fitted_std.clamp_min(_std_floor(fitted_std)).to(std.dtype))


def _std_floor(std: Tensor) -> float:
    """The least std a dimension is scaled by: a fraction of the median std of the
    dimensions that vary; 1 when none does (they are then centred, not scaled)."""
    varying = std[std > 0]
    return MIN_RELATIVE_STD * float(varying.median()) if len(varying) else 1.0


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

    def is_finite(self) -> bool:
        # A NaN or inf anywhere in the rows makes the sums non-finite.
        assert self.total is not None and self.squares is not None
        return bool(torch.isfinite(self.total).all() and torch.isfinite(self.squares).all())

    def mean_std(self) -> tuple[Tensor, Tensor]:
        assert self.total is not None and self.squares is not None
        mean = self.total / self.count
        variance = (self.squares / self.count - mean * mean).clamp_min(0)
        return mean, variance.sqrt()
