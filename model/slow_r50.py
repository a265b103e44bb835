"""PyTorchVideo's Slow R50 (3D ResNet-50), state-dict compatible with the official
Kinetics-400 `SLOW_8x8_R50.pyth`, used as a clip-level content encoder (model layer).

Layout follows shared/reference/ARCHITECTURES.md section 2. The stock head pools with an
(8, 7, 7) kernel, which does not fit 16x112x112 clips (their last map is 16x4x4), so the
features are a global average over T, H and W instead. The head's `proj` layer is kept so
that the official file loads strictly and `logits` can still classify Kinetics actions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from model.registry import PretrainedCfg, register_model

logger = logging.getLogger(__name__)

FEATURE_DIM = 2048
NUM_CLASSES = 400
# (inner width, out width, blocks, temporal kernel of conv_a, spatial stride) per stage.
_STAGES = ((64, 256, 3, 1, 1), (128, 512, 4, 1, 2), (256, 1024, 6, 3, 2), (512, 2048, 3, 3, 2))
# One block per stage: the small variant `ddm demo` runs with random weights on a CPU.
_SMALL_STAGES = tuple((inner, out, 1, kt, stride) for inner, out, _, kt, stride in _STAGES)


class ResNetBasicStem(nn.Module):
    """(1, 7, 7) conv with stride (1, 2, 2), BN, ReLU and a (1, 3, 3) max-pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 64, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.norm = nn.BatchNorm3d(64)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.activation(self.norm(self.conv(x))))


class BottleneckBlock(nn.Module):
    """conv_a (kt, 1, 1) -> conv_b (1, 3, 3) with the spatial stride -> conv_c 1x1x1."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, kt: int, stride: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv3d(dim_in, dim_inner, (kt, 1, 1), 1, (kt // 2, 0, 0), bias=False)
        self.norm_a = nn.BatchNorm3d(dim_inner)
        self.act_a = nn.ReLU()
        self.conv_b = nn.Conv3d(
            dim_inner, dim_inner, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False
        )
        self.norm_b = nn.BatchNorm3d(dim_inner)
        self.act_b = nn.ReLU()
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.norm_c = nn.BatchNorm3d(dim_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class ResBlock(nn.Module):
    """Bottleneck plus shortcut, ReLU after the sum. Only a stage's first block has the
    1x1x1 projection shortcut (`branch1_*`); the others use the identity."""

    def __init__(
        self, dim_in: int, dim_inner: int, dim_out: int, kt: int, stride: int, first: bool
    ) -> None:
        super().__init__()
        self.branch1_conv: nn.Module | None = None
        self.branch1_norm: nn.Module | None = None
        if first:
            self.branch1_conv = nn.Conv3d(dim_in, dim_out, 1, (1, stride, stride), bias=False)
            self.branch1_norm = nn.BatchNorm3d(dim_out)
        self.branch2 = BottleneckBlock(dim_in, dim_inner, dim_out, kt, stride if first else 1)
        self.activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        if self.branch1_conv is not None and self.branch1_norm is not None:
            shortcut = self.branch1_norm(self.branch1_conv(x))
        return self.activation(self.branch2(x) + shortcut)


class ResStage(nn.Module):
    """A stage of `depth` ResBlocks; the first one changes width and resolution."""

    def __init__(
        self, dim_in: int, dim_inner: int, dim_out: int, depth: int, kt: int, stride: int
    ) -> None:
        super().__init__()
        self.res_blocks = nn.ModuleList(
            ResBlock(dim_in if i == 0 else dim_out, dim_inner, dim_out, kt, stride, first=i == 0)
            for i in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


class ClassifierHead(nn.Module):
    """The Kinetics head's parameters (`proj`) applied to globally pooled features."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.5)
        self.proj = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, features: Tensor) -> Tensor:
        return self.proj(self.dropout(features))


class SlowR50(nn.Module):
    """Slow-only 3D ResNet-50 whose forward returns one 2048-d vector per clip."""

    def __init__(self, stages: tuple[tuple[int, ...], ...] = _STAGES) -> None:
        super().__init__()
        blocks: list[nn.Module] = [ResNetBasicStem()]
        dim_in = 64
        for dim_inner, dim_out, depth, kt, stride in stages:
            blocks.append(ResStage(dim_in, dim_inner, dim_out, depth, kt, stride))
            dim_in = dim_out
        blocks.append(ClassifierHead())
        self.blocks = nn.ModuleList(blocks)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        """Encode clips.

        Args:
            x: (B, 3, T, H, W) clips in [0, 1] normalised with mean 0.45 and std 0.225;
                the detector uses T=16 and H=W=112.

        Returns:
            (B, 2048) features, averaged over time and space.
        """
        for block in self.blocks[:-1]:
            x = block(x)  # last: (B, 2048, T, ceil(H/32), ceil(W/32))
        return x.mean(dim=(2, 3, 4))

    def logits(self, x: Tensor) -> Tensor:
        """Kinetics-400 logits (B, 400): linear head on the pooled features."""
        return self.blocks[-1](self.forward(x))


def _init_weights(model: nn.Module) -> None:
    # Mirrors PyTorchVideo's "resnet" init (MSRA fill for convs, unit BN, small linear)
    # so random-weight runs behave like a freshly built reference model.
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm3d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)


def slow_r50_filter_fn(checkpoint: Mapping[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """Return the official file's `model_state` (or the mapping itself when it is already
    a bare state dict, e.g. a `.safetensors` export)."""
    state = checkpoint.get("model_state", checkpoint)
    return dict(state) if isinstance(state, Mapping) else {}


@register_model(
    "slow_r50",
    pretrained_cfg=PretrainedCfg(
        weights_file="SLOW_8x8_R50.pyth",
        filter_fn=slow_r50_filter_fn,
        mean=(0.45, 0.45, 0.45),
        std=(0.225, 0.225, 0.225),
        input_size=(3, 16, 112, 112),
        source="PyTorchVideo model zoo, kinetics/SLOW_8x8_R50.pyth",
        # The URL PyTorchVideo's hub entry loads; the model zoo states no size or digest,
        # so the first fetch records them.
        url="https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOW_8x8_R50.pyth",
    ),
)
def slow_r50() -> SlowR50:
    """PyTorchVideo Slow R50 (Kinetics-400 SLOW 8x8) as a 2048-d clip encoder."""
    return SlowR50()


@register_model(
    "slow_r50_small",
    pretrained_cfg=PretrainedCfg(
        weights_file="slow_r50_small.pt",
        mean=(0.45, 0.45, 0.45),
        std=(0.225, 0.225, 0.225),
        input_size=(3, 16, 56, 56),
        source="none published: a CPU-sized variant for `ddm demo` and tests",
    ),
)
def slow_r50_small() -> SlowR50:
    """Slow R50 with one bottleneck block per stage (4 instead of 16): the same 2048-d
    clip vectors; it has no published weights."""
    return SlowR50(stages=_SMALL_STAGES)


__all__ = ["FEATURE_DIM", "SlowR50", "slow_r50", "slow_r50_filter_fn"]
