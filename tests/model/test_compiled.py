"""The compiled style network (model.compiled): inductor really compiles it in inference,
gives the eager codes to rounding under the same fingerprint, runs eagerly where gradients
flow, and falls back to eager execution, with one warning, where a compilation fails."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from model.compiled import CompiledForward, compile_backend_available
from model.features import ExtractorCfg, build_extractor

pytestmark = pytest.mark.skipif(
    not compile_backend_available(torch.device("cpu")), reason="no C++ compiler for inductor"
)


class Recorder(nn.Module):
    """A small convolution block that notes, per call, whether dynamo is tracing it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.PReLU(8)
        self.traced: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.traced.append(torch.compiler.is_compiling())
        return self.act(self.conv(x)) + 1


def inputs(seed: int = 0, size: int = 16) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_inference_calls_run_compiled_and_give_the_eager_output() -> None:
    module = Recorder().eval()
    forward = CompiledForward(module)
    with torch.inference_mode():
        eager = module(inputs())
        compiled = forward(inputs())
    assert module.traced == [False, True]  # the second call went through dynamo
    assert forward.is_compiled
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)


def test_calls_with_gradients_run_eagerly() -> None:
    module = Recorder().eval()
    forward = CompiledForward(module)
    x = inputs().requires_grad_()
    out = forward(x)
    out.sum().backward()
    assert module.traced == [False] and x.grad is not None and forward.is_compiled


def test_an_input_error_is_raised_and_compiling_stays_on() -> None:
    forward = CompiledForward(Recorder().eval())
    with torch.inference_mode(), pytest.raises(RuntimeError):
        forward(torch.zeros(2, 5, 16, 16))  # 5 channels for a 3-channel convolution
    assert forward.is_compiled


def test_a_failed_compilation_warns_once_and_runs_eagerly(caplog) -> None:
    # What a machine without a working C++ compiler does: inductor's build fails.
    no_compiler = {"cpp.cxx": ("/nonexistent/c++",), "force_disable_caches": True}
    torch._dynamo.reset()
    module = Recorder().eval()
    forward = CompiledForward(module)
    with (
        torch._inductor.config.patch(no_compiler),
        torch.inference_mode(),
        caplog.at_level(logging.WARNING, logger="model.compiled"),
    ):
        # A size no other test compiles, so no kernel of this process can be reused.
        first = forward(inputs(1, size=21))
        second = forward(inputs(2, size=21))
        expected = module(inputs(2, size=21))
    torch._dynamo.reset()
    assert not forward.is_compiled
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "model.compiled"]
    assert warning.startswith("torch.compile failed (") and "\n" not in warning
    assert "C++ compiler" in warning
    torch.testing.assert_close(second, expected)
    assert first.shape == (2, 8, 21, 21)


def test_the_compiled_extractor_gives_the_eager_codes_under_one_fingerprint() -> None:
    cfg = ExtractorCfg(
        num_frames=8,
        style_model="psp_encoder_small",
        content_model="slow_r50_small",
        face_size=128,
        content_size=56,
    )
    extractors = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        extractors[compiled] = build_extractor(
            cfg, allow_random_weights=True, compile_style=compiled, weights_dir="/nonexistent"
        )
    crops = np.random.default_rng(0).integers(0, 256, (8, 128, 128, 3), dtype=np.uint8)
    eager = extractors[False].encode_style(crops)
    compiled = extractors[True].encode_style(crops)
    assert extractors[True].style_is_compiled and not extractors[False].style_is_compiled
    assert extractors[True].fingerprint == extractors[False].fingerprint
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
