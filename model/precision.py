"""Numeric precision of the extraction backbones: fp32, or bf16 autocast (model layer).

Both run the convolutions in channels_last layout, which oneDNN (CPU) and cuDNN (GPU)
execute faster than the default layout without changing the results beyond rounding.
bf16 autocast changes them more than rounding does, so it is part of the extractor's
fingerprint: its caches never mix with fp32 ones. TF32, which cuDNN uses for fp32
convolutions by default, changes them as much, so extraction turns it off (`strict_fp32`).

Measured on a 2-core CPU with AMX-BF16 (bench/extract.py, T = 32): the style stage of a
video took 15.9 s in fp32 and 4.9 s in bf16, the whole video 22.2 s and 10.7 s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

FP32, BF16 = "fp32", "bf16"
PRECISIONS = (FP32, BF16)


def check_precision(precision: str) -> str:
    """Return `precision` if it is one of PRECISIONS.

    Raises:
        ValueError: any other value.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def to_channels_last(module: nn.Module) -> nn.Module:
    """Store the module's 4-d and 5-d weights channels-last (2-d and 3-d convolutions)."""
    for param in module.parameters():
        if param.ndim in (4, 5):
            layout = torch.channels_last if param.ndim == 4 else torch.channels_last_3d
            param.data = param.data.contiguous(memory_format=layout)
    return module


def channels_last_input(x: Tensor) -> Tensor:
    """(B, C, H, W) or (B, C, T, H, W) input in the layout `to_channels_last` expects."""
    if x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    if x.ndim == 5:
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


@contextlib.contextmanager
def autocast_for(precision: str, device: torch.device) -> Iterator[None]:
    """bf16 autocast on `device` for BF16; nothing for FP32."""
    if check_precision(precision) == FP32:
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """Turn TF32 off for cuDNN convolutions and CUDA matmuls; restore the settings after.

    TF32 keeps 10 mantissa bits: a GPU's "fp32" features would then differ from a CPU's by
    far more than rounding, and MTCNN's boxes could flip at its thresholds, under the one
    fp32 fingerprint. Strict fp32 keeps that fingerprint meaning the same numbers on every
    device, rather than splitting caches per device kind; bf16 is the fast option and has
    its own fingerprint. The settings are process-wide: run one extraction at a time per
    process (decoding threads run no convolutions).
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


AUTO = "auto"


def bf16_is_fast(device: torch.device) -> bool:
    """True where bf16 matrix products run in hardware: a CPU with AMX tiles (their bf16
    units), or a GPU with native bf16. Elsewhere bf16 autocast is emulated and slower than
    fp32, so `auto` keeps fp32 there."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(torch.cpu._is_amx_tile_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """`precision` itself, or for AUTO, BF16 where `bf16_is_fast(device)`, else FP32."""
    if precision == AUTO:
        return BF16 if bf16_is_fast(device) else FP32
    return check_precision(precision)
