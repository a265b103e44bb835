"""The style-flow deepfake detector: StyleGRU over style flows, style attention into the
content vectors, a transformer encoder with a class token and a two-layer head (model layer).

Inputs are the cached features of one video: content (N, 2048) with N = T/16 clips and
style (T, L, 512) pSp codes; the output is one logit per video (sigmoid = P(fake)).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.gru import gru_forward
from model.registry import register_model
from model.standardize import InputStandardizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorCfg:
    """Every size of the detector; saved in checkpoints so they rebuild their model.

    Attributes:
        content_dim: width of a content vector (Slow R50: 2048).
        style_dim: width of one pSp level (512).
        style_levels: levels per frame in the cached style tensor (L).
        gru_hidden: StyleGRU hidden size per direction.
        gru_layers: StyleGRU layers.
        bidirectional: run the StyleGRU both ways.
        gru_dropout: dropout between GRU layers (ignored with one layer).
        dim: width of the attention and transformer tokens.
        num_heads: transformer attention heads.
        depth: transformer encoder layers (the contributor code's setting is 1).
        mlp_dim: transformer feed-forward width.
        dropout: dropout in embeddings, transformer and head.
        head_hidden: hidden width of the two-layer head.
        max_clips: most content tokens a video may have (sizes the position table).
    """

    content_dim: int = 2048
    style_dim: int = 512
    style_levels: int = 1
    gru_hidden: int = 512
    gru_layers: int = 2
    bidirectional: bool = True
    gru_dropout: float = 0.1
    dim: int = 512
    num_heads: int = 8
    depth: int = 1
    mlp_dim: int = 1024
    dropout: float = 0.1
    head_hidden: int = 256
    max_clips: int = 16

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")


def style_flow(style: Tensor) -> Tensor:
    """First differences of consecutive style vectors.

    (B, T, L, D) -> (B, T-1, L*D). A constant offset such as pSp's `latent_avg`
    cancels here, so only the temporal change of the style reaches the model.
    """
    return style.flatten(2).diff(dim=1)


class StyleGRU(nn.Module):
    """GRU over the style-flow sequence; its per-step outputs are the attention keys and
    values."""

    def __init__(self, cfg: DetectorCfg) -> None:
        super().__init__()
        self.gru = nn.GRU(
            cfg.style_dim * cfg.style_levels,
            cfg.gru_hidden,
            num_layers=cfg.gru_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.gru_dropout if cfg.gru_layers > 1 else 0.0,
        )
        self.out_dim = cfg.gru_hidden * (2 if cfg.bidirectional else 1)
        # The CPU kernel of model/gru.py (same parameters, same maths; epochs 1.15x to
        # 1.8x faster in bf16, bench/README.md); False runs nn.GRU everywhere, as
        # bench/train.py's "native" variants do.
        self.cpu_kernel = True

    def forward(self, flow: Tensor) -> Tensor:
        if self.cpu_kernel:
            return gru_forward(self.gru, flow)  # (B, T-1, H * directions)
        outputs, _ = self.gru(flow)
        return outputs


class StyleAttention(nn.Module):
    """Content vectors query the StyleGRU outputs (scaled dot product, softmax).

    The attended style is added to a projection of the content, and the output
    projection starts at zero (as in the contributor code's STA), so training begins
    from the content path alone and learns how much style to mix in.
    """

    def __init__(self, content_dim: int, style_dim: int, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(content_dim, dim)
        self.key = nn.Linear(style_dim, dim)
        self.value = nn.Linear(style_dim, dim)
        self.content = nn.Linear(content_dim, dim)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def weights(self, content: Tensor, style: Tensor) -> Tensor:
        """(B, N, T-1) softmax weights each content clip puts on each style-flow step."""
        q = self.query(content)  # (B, N, dim)
        k = self.key(style)  # (B, T-1, dim)
        return torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        weights = self.weights(content, style)
        return self.content(content) + self.out(weights @ self.value(style))  # (B, N, dim)


class StyleFlowDetector(nn.Module):
    """Style-flow detector returning one logit per video.

    Args:
        cfg: all sizes.
    """

    def __init__(self, cfg: DetectorCfg) -> None:
        super().__init__()
        self.cfg = cfg
        # Fitted on the training videos before training (see model/standardize.py).
        flow_dim = cfg.style_levels * cfg.style_dim
        self.standardize = InputStandardizer(cfg.content_dim, flow_dim)
        self.style_gru = StyleGRU(cfg)
        self.attention = StyleAttention(cfg.content_dim, self.style_gru.out_dim, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.max_clips + 1, cfg.dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.embed_dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.dim,
            cfg.num_heads,
            cfg.mlp_dim,
            cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Nested tensors only speed up padded batches; ours are dense, and the fast path
        # would make train and eval numerics differ.
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Sequential(
            nn.Linear(cfg.dim, cfg.head_hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_hidden, 1),
        )

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        """Score a batch of videos.

        Args:
            content: (B, N, content_dim) clip vectors, N <= max_clips.
            style: (B, T, L, style_dim) per-frame style codes, T >= 2.

        Returns:
            (B,) logits; `torch.sigmoid` gives the probability of fake.
        """
        content, keys = self._attention_inputs(content, style)
        tokens = self.attention(content, keys)  # (B, N, dim)
        cls = self.cls_token.expand(len(tokens), -1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.pos_embed[:, : tokens.shape[1] + 1]
        x = self.encoder(self.embed_dropout(x))  # (B, N+1, dim)
        return self.head(self.norm(x[:, 0])).squeeze(-1)

    def attention_weights(self, content: Tensor, style: Tensor) -> Tensor:
        """(B, N, T-1) weights each content clip puts on each style-flow step, computed
        exactly as `forward` computes them; arguments as for `forward`."""
        return self.attention.weights(*self._attention_inputs(content, style))

    def _attention_inputs(self, content: Tensor, style: Tensor) -> tuple[Tensor, Tensor]:
        # Standardised content and StyleGRU outputs: shared by forward and the weights.
        self._check(content, style)
        content, flow = self.standardize(content, style_flow(style))
        return content, self.style_gru(flow)  # (B, N, content_dim), (B, T-1, H')

    def fit_input_stats(self, batches: Iterable[Mapping[str, Tensor]]) -> None:
        """Fit the input standardisation on training batches of {"content", "style"}."""
        self.standardize.fit(
            {"content": batch["content"], "flow": style_flow(batch["style"])} for batch in batches
        )

    @torch.no_grad()
    def predict_proba(self, content: Tensor, style: Tensor) -> Tensor:
        """(B,) probabilities of fake; the label is `proba >= 0.5`."""
        return torch.sigmoid(self(content, style))

    def _check(self, content: Tensor, style: Tensor) -> None:
        cfg = self.cfg
        if content.ndim != 3 or content.shape[-1] != cfg.content_dim:
            raise ValueError(f"content must be (B, N, {cfg.content_dim}), got {_shape(content)}")
        if content.shape[1] > cfg.max_clips:
            raise ValueError(f"{content.shape[1]} content clips exceed max_clips={cfg.max_clips}")
        expected = (cfg.style_levels, cfg.style_dim)
        if style.ndim != 4 or tuple(style.shape[2:]) != expected or style.shape[1] < 2:
            raise ValueError(
                f"style must be (B, T>=2, {expected[0]}, {expected[1]}), got {_shape(style)}"
            )


def _shape(x: Tensor) -> list[int]:
    return list(x.shape)


def bce_loss(logits: Tensor, target: Tensor, pos_weight: float | None = None) -> Tensor:
    """Binary cross-entropy on logits (the sigmoid is fused in for numerical stability);
    `target` may be soft, as after mixup. `pos_weight` scales the fake (positive) term:
    n_real / n_fake balances the classes."""
    weight = None if pos_weight is None else torch.tensor(pos_weight, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), pos_weight=weight)


def build_detector(cfg: DetectorCfg) -> StyleFlowDetector:
    """Build the detector from its frozen config (e.g. one read from a checkpoint)."""
    return StyleFlowDetector(cfg)


@register_model("style_flow_detector")
def style_flow_detector(**kwargs: object) -> StyleFlowDetector:
    """Style-flow detector; keyword arguments are `DetectorCfg` fields."""
    return StyleFlowDetector(DetectorCfg(**kwargs))  # type: ignore[arg-type]
