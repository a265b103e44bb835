"""pSp's GradualStyleEncoder on an IR-SE-50 body, state-dict compatible with the official
`psp_ffhq_encode.pt` encoder (model layer).

Layout and numbers follow shared/reference/ARCHITECTURES.md section 1. The module always
holds all 18 map2style heads so the official checkpoint loads strictly, but a forward pass
runs only the heads for the requested W+ levels: the heads are more than half the FLOPs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from model.registry import PretrainedCfg, register_model

logger = logging.getLogger(__name__)

N_STYLES = 18  # 2 * log2(1024) - 2 for the 1024-px FFHQ generator
STYLE_DIM = 512
DEFAULT_LEVELS = (9,)
# Heads 0-2 read the 16x16 map c3, heads 3-6 the 32x32 map p2, heads 7-17 the 64x64 p1.
COARSE_END = 3
MIDDLE_END = 7
# (in channels, out channels, units) of the four IR-SE-50 stages; each starts with stride 2.
_IR_SE_50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))
# One unit per stage: the small variant `ddm demo` runs with random weights on a CPU.
_SMALL_STAGES = ((64, 64, 1), (64, 128, 1), (128, 256, 1), (256, 512, 1))
Stages = tuple[tuple[int, int, int], ...]


class SEModule(nn.Module):
    """Squeeze-and-excitation gate with 1x1 convs (no bias), as IR-SE uses it."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))  # (B, C, 1, 1)
        return x * gate


class BottleneckIRSE(nn.Module):
    """IR-SE unit: pre-BN residual branch with SE, plus a shortcut; no activation after
    the sum. The stride sits on the second 3x3 conv, as in the reference."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if in_channels == out_channels:
            # A 1x1 max-pool is a parameter-free subsampler; it keeps the key layout.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            SEModule(out_channels, 16),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self._shortcut(x)

    def _shortcut(self, x: Tensor) -> Tensor:
        pool = self.shortcut_layer
        if isinstance(pool, nn.MaxPool2d):
            # What the 1x1 max-pool computes, without its copy: 5% of the encoder's time.
            return x if pool.stride == 1 else x[:, :, :: pool.stride, :: pool.stride]
        return pool(x)


class EqualLinear(nn.Module):
    """StyleGAN2's equalised linear layer.

    The 1/sqrt(in) scale is applied at run time, not folded into the stored weight, so
    the official weights load unchanged.
    """

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class GradualStyleBlock(nn.Module):
    """map2style head: log2(spatial) stride-2 3x3 convs down to 1x1, then EqualLinear."""

    def __init__(self, in_channels: int, out_channels: int, spatial: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        layers: list[nn.Module] = []
        for index in range(int(math.log2(spatial))):
            layers.append(
                nn.Conv2d(in_channels if index == 0 else out_channels, out_channels, 3, 2, 1)
            )
            layers.append(nn.LeakyReLU())  # default slope 0.01, as in the reference
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_channels, out_channels, lr_mul=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.convs(x)  # (B, C, 1, 1) for inputs up to 256x256
        if x.shape[-2:] != (1, 1):
            raise ValueError(
                f"style head reduced its map to {tuple(x.shape[-2:])}, not 1x1; "
                f"the encoder accepts square inputs of at most 256 pixels"
            )
        return self.linear(x.flatten(1))


def _upsample_add(x: Tensor, y: Tensor) -> Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


def _check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    levels = tuple(int(level) for level in levels)
    if not levels or any(not 0 <= level < N_STYLES for level in levels):
        raise ValueError(f"levels must be non-empty 0-based indices below {N_STYLES}: {levels}")
    return levels


class GradualStyleEncoder(nn.Module):
    """pSp encoder: IR-SE-50 body, FPN-like merge and 18 map2style heads.

    Args:
        levels: 0-based W+ indices computed by default in `forward`; (9,) is the seed's
            choice. All 18 heads exist regardless, so the official weights load strictly.

    The official checkpoint's `latent_avg` is kept in a non-persistent buffer (it is not
    part of the official encoder state dict) and is not added by `forward`.
    """

    def __init__(
        self, levels: Sequence[int] = DEFAULT_LEVELS, stages: Stages = _IR_SE_50_STAGES
    ) -> None:
        super().__init__()
        self.levels = _check_levels(levels)
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        units = []
        for in_channels, out_channels, count in stages:
            units.append(BottleneckIRSE(in_channels, out_channels, 2))
            units.extend(BottleneckIRSE(out_channels, out_channels, 1) for _ in range(count - 1))
        self.body = nn.Sequential(*units)
        # The FPN-like merge reads the ends of stages 2, 3 and 4.
        ends = [sum(count for _, _, count in stages[: i + 1]) - 1 for i in range(len(stages))]
        self._taps = tuple(ends[1:4])
        self.styles = nn.ModuleList(
            GradualStyleBlock(512, STYLE_DIM, _head_spatial(index)) for index in range(N_STYLES)
        )
        self.latlayer1 = nn.Conv2d(256, 512, 1)
        self.latlayer2 = nn.Conv2d(128, 512, 1)
        self.register_buffer("latent_avg", torch.zeros(N_STYLES, STYLE_DIM), persistent=False)

    def set_latent_avg(self, latent_avg: Tensor) -> None:
        """Store the generator's mean W ([18, 512], or [512] broadcast to every level)."""
        if tuple(latent_avg.shape) not in ((N_STYLES, STYLE_DIM), (STYLE_DIM,)):
            raise ValueError(f"latent_avg must be [18, 512] or [512], got {list(latent_avg.shape)}")
        self.latent_avg.copy_(latent_avg.to(self.latent_avg).expand(N_STYLES, STYLE_DIM))

    def forward(self, x: Tensor, levels: Sequence[int] | None = None) -> Tensor:
        """Encode normalised face crops.

        Args:
            x: (B, 3, H, W) crops normalised with mean 0.5 and std 0.5; H = W = 256 for
                the official weights (smaller powers of two run too, e.g. in tests).
            levels: W+ indices to compute; defaults to the constructor's `levels`.

        Returns:
            (B, len(levels), 512) style codes, in the order of `levels`.
        """
        levels = self.levels if levels is None else _check_levels(levels)
        c1, c2, c3 = self._body_taps(self.input_layer(x))
        maps = {"c3": c3}
        if any(level >= COARSE_END for level in levels):
            maps["p2"] = _upsample_add(c3, self.latlayer1(c2))  # (B, 512, H/8, W/8)
        if any(level >= MIDDLE_END for level in levels):
            maps["p1"] = _upsample_add(maps["p2"], self.latlayer2(c1))  # (B, 512, H/4, W/4)
        codes = [self.styles[level](maps[_head_input(level)]) for level in levels]
        return torch.stack(codes, dim=1)

    def _body_taps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        taps: dict[int, Tensor] = {}
        for index, unit in enumerate(self.body):
            x = unit(x)
            if index in self._taps:
                taps[index] = x
        c1, c2, c3 = self._taps
        return taps[c1], taps[c2], taps[c3]


class _DroppedHead(nn.Module):
    """Stands for a map2style head that `prepare_for_inference` removed."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def forward(self, x: Tensor) -> Tensor:
        raise ValueError(f"W+ level {self.level} was dropped from this inference encoder")


def prepare_for_inference(encoder: GradualStyleEncoder) -> GradualStyleEncoder:
    """Make an eval-mode encoder cheaper to keep and to run, in place, for its `levels`.

    Drops the heads of the other levels (up to 0.9 GB of the encoder's 1.1 GB; their
    weights were still loaded, so the official checkpoint was checked whole) and folds
    each batch norm that follows a convolution into it. The pre-activation batch norm
    opening each unit stays: it precedes a zero-padded convolution, so folding it would
    change the borders. Outputs change by float rounding only.
    """
    for level in range(N_STYLES):
        if level not in encoder.levels:
            encoder.styles[level] = _DroppedHead(level)
    _fold(encoder.input_layer, 0, 1)
    for unit in encoder.body:
        _fold(unit.res_layer, 3, 4)
        if isinstance(unit.shortcut_layer, nn.Sequential):
            _fold(unit.shortcut_layer, 0, 1)
    return encoder


def _fold(block: nn.Sequential, conv: int, norm: int) -> None:
    block[conv] = fuse_conv_bn_eval(block[conv], block[norm])
    block[norm] = nn.Identity()


def _head_spatial(index: int) -> int:
    return 16 if index < COARSE_END else 32 if index < MIDDLE_END else 64


def _head_input(index: int) -> str:
    return "c3" if index < COARSE_END else "p2" if index < MIDDLE_END else "p1"


def psp_filter_fn(checkpoint: Mapping[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """Turn an official pSp checkpoint into the encoder's state dict.

    Keeps the `encoder.*` keys of `checkpoint["state_dict"]` without the prefix (a bare
    encoder state dict without prefixes is accepted too) and copies the top-level
    `latent_avg`, which the official file stores outside the state dict, into the module.
    """
    state_dict = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state_dict, Mapping):
        state_dict = {}
    prefixed = {k[len("encoder.") :]: v for k, v in state_dict.items() if k.startswith("encoder.")}
    encoder = prefixed or {k: v for k, v in state_dict.items() if k != "latent_avg"}
    latent_avg = checkpoint.get("latent_avg", state_dict.get("latent_avg"))
    if isinstance(latent_avg, Tensor) and isinstance(model, GradualStyleEncoder):
        model.set_latent_avg(latent_avg)
    return encoder


# Google Drive file id of `psp_ffhq_encode.pt` ("StyleGAN Inversion" in pSp's README).
_PSP_FFHQ_DRIVE_ID = "1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0"


@register_model(
    "psp_encoder",
    pretrained_cfg=PretrainedCfg(
        weights_file="psp_ffhq_encode.pt",
        filter_fn=psp_filter_fn,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=(3, 256, 256),
        source="pixel2style2pixel README: pSp FFHQ inversion model",
        # The Drive link of pSp's README, in the direct form of its download-weights.sh;
        # neither states a size or digest, so the first fetch records them.
        url=f"https://docs.google.com/uc?export=download&id={_PSP_FFHQ_DRIVE_ID}",
        download_page=f"https://drive.google.com/file/d/{_PSP_FFHQ_DRIVE_ID}/view",
    ),
)
def psp_encoder(levels: Sequence[int] = DEFAULT_LEVELS) -> GradualStyleEncoder:
    """pSp FFHQ-encode GradualStyleEncoder(50, 'ir_se') computing `levels` by default."""
    return GradualStyleEncoder(levels=levels)


@register_model(
    "psp_encoder_small",
    pretrained_cfg=PretrainedCfg(
        weights_file="psp_encoder_small.pt",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=(3, 64, 64),
        source="none published: a CPU-sized variant for `ddm demo` and tests",
    ),
)
def psp_encoder_small(levels: Sequence[int] = DEFAULT_LEVELS) -> GradualStyleEncoder:
    """The pSp encoder with one IR-SE unit per stage (4 instead of 24): same heads, same
    output, about a sixth of the body's work; it has no published weights."""
    return GradualStyleEncoder(levels=levels, stages=_SMALL_STAGES)
