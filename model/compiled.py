"""torch.compile for the style backbone, with eager execution as the fallback (model layer).

Inductor fuses the element-wise work between pSp's convolutions (PReLU, the
pre-activation norms, residual adds, the SE gates) into the kernels around it, and with
the graph frozen it folds and prepacks the weights once. Measured on a 2-core CPU with
AMX (bench/compile_style.py, the style stage of one video, 32 crops of 256 px, random
weights, eager and compiled in turn, medians of 8 rounds): bf16 1.36x and 1.20x faster
compiled in two runs (3.34 against 2.47 s, 2.50 against 2.08 s), with codes as close to
fp32's as eager bf16's are; fp32 0.92x and 1.07x, no clear gain, with codes equal to 1e-8;
whole videos gained too little to stand out of the machine's noise (bench/README.md). The
CPU-sized encoder gains nothing either. The first call pays the compilation: about 20 to
60 s with an empty inductor cache and a few seconds with a warm one
(`TORCHINDUCTOR_CACHE_DIR`, by default under the temp folder). Callers therefore compile
only where the work repays it (`tasks.extraction.compiles_style`).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)


def compile_backend_available(device: torch.device) -> bool:
    """True where inductor can build kernels: a C++ compiler for a CPU, Triton for a GPU."""
    if device.type == "cpu":
        return any(shutil.which(name) for name in ("g++", "c++", "clang++"))
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return False


class CompiledForward:
    """Calls `torch.compile(module)` in inference, and the module itself otherwise.

    Graphs are compiled for fixed shapes (`dynamic=False`): an extraction job's batches
    share one shape, and a last, shorter batch costs one more compilation. Where a
    compilation fails (no compiler after all, an unsupported operator), this logs one
    warning and runs the module eagerly from then on: the same numbers to rounding, slower.
    Calls with gradients (saliency) always run eagerly; compiling the backward pass would
    cost minutes for maps drawn a few at a time.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        # Frozen: the weights are constants of the graph, so inductor folds and prepacks
        # them for oneDNN once; the extractor never changes them after it is built.
        self._compiled: Callable[..., Any] | None = torch.compile(
            module, dynamic=False, options={"freezing": True}
        )

    @property
    def is_compiled(self) -> bool:
        """False once a compilation failed and the module runs eagerly."""
        return self._compiled is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is None or torch.is_grad_enabled():
            return self.module(*args, **kwargs)
        try:
            return self._compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to compile means: run eagerly
            # An error of the input itself is raised again here, and compiling stays on.
            result = self.module(*args, **kwargs)
            logger.warning(
                "torch.compile failed (%s); the style network runs eagerly", _reason(exc)
            )
            self._compiled = None
            return result


def _reason(exc: Exception) -> str:
    """One line on why a compilation failed: dynamo wraps the backend's own error."""
    inner = getattr(exc, "inner_exception", None) or exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0]}" if lines else type(inner).__name__
