"""The StyleGRU's CPU kernel (model/gru.py) against `nn.GRU` itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model.detector import DetectorCfg, bce_loss, build_detector
from model.gru import gru_forward
from model.precision import autocast_for


def make_gru(layers: int = 2, bidirectional: bool = True, hidden: int = 24, dropout=0.0):
    torch.manual_seed(0)
    return nn.GRU(
        20, hidden, layers, batch_first=True, bidirectional=bidirectional, dropout=dropout
    )


def outputs_and_grads(gru: nn.GRU, x: torch.Tensor, run) -> tuple[torch.Tensor, ...]:
    """The outputs, the input's gradient and every parameter's gradient of a weighted sum
    of the outputs (weights fixed, so every output element matters differently)."""
    x = x.clone().requires_grad_()
    gru.zero_grad()
    y = run(gru, x)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    (y.float() * weights).sum().backward()
    return (y.detach(), x.grad, *(p.grad.clone() for p in gru.parameters()))


def through_kernel(y: torch.Tensor) -> bool:
    """True when y came out of model.gru's autograd node (then one transpose)."""
    return type(y.grad_fn.next_functions[0][0]).__name__ == "GRULayerBackward"


def native(gru: nn.GRU, x: torch.Tensor) -> torch.Tensor:
    return gru(x)[0]


@pytest.mark.parametrize(
    ("layers", "bidirectional", "batch"), [(2, True, 5), (1, False, 1), (3, True, 2)]
)
def test_fp32_outputs_and_gradients_equal_nn_gru(layers, bidirectional, batch):
    gru = make_gru(layers, bidirectional)
    x = torch.randn(batch, 9, 20, generator=torch.Generator().manual_seed(2))
    expected = outputs_and_grads(gru, x, native)
    got = outputs_and_grads(gru, x, gru_forward)
    assert through_kernel(gru_forward(gru, x))
    assert len(got) == len(expected) == 2 + 4 * layers * (2 if bidirectional else 1)
    for mine, theirs in zip(got, expected, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_follows_fp32_closely():
    gru = make_gru()
    x = torch.randn(6, 12, 20, generator=torch.Generator().manual_seed(3))
    expected = outputs_and_grads(gru, x, native)

    def under_bf16(module, inputs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return gru_forward(module, inputs)

    got = outputs_and_grads(gru, x, under_bf16)
    assert got[0].dtype == torch.float32  # the state stays fp32; only products are bf16
    for mine, theirs in zip(got, expected, strict=True):
        cosine = nn.functional.cosine_similarity(mine.flatten(), theirs.flatten(), dim=0)
        assert cosine > 0.999
        assert not torch.equal(mine, theirs)  # the products did run in bf16


def test_dropout_between_layers_as_nn_gru_applies_it():
    # nn.GRU drops each layer's outputs but the last's in training; two one-layer GRUs
    # with the same weights and one dropout call between them draw the same mask.
    gru = make_gru(layers=2, dropout=0.5).train()
    first = nn.GRU(20, 24, 1, batch_first=True, bidirectional=True)
    second = nn.GRU(48, 24, 1, batch_first=True, bidirectional=True)
    for layer, module in ((0, first), (1, second)):
        for name, value in module.named_parameters():
            value.data.copy_(getattr(gru, name.replace("_l0", f"_l{layer}")))
    x = torch.randn(3, 7, 20)
    torch.manual_seed(5)
    got = gru_forward(gru, x)
    torch.manual_seed(5)
    expected = second(nn.functional.dropout(first(x)[0], 0.5, training=True))[0]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.manual_seed(5)
    assert not torch.allclose(gru_forward(gru.eval(), x), got)


def test_inference_without_gradients_is_nn_gru_itself():
    # Without gradients nn.GRU's own CPU path (oneDNN's fused GRU) is the faster one.
    gru = make_gru().eval()
    x = torch.randn(4, 8, 20)
    with torch.no_grad():
        got, expected = gru_forward(gru, x), gru(x)[0]
    assert not got.requires_grad
    assert torch.equal(got, expected)


def test_gradients_of_the_input_alone():
    # Saliency: frozen weights, gradients wanted only for the input sequence.
    gru = make_gru().eval().requires_grad_(False)
    x = torch.randn(2, 7, 20, requires_grad=True)
    y = gru_forward(gru, x)
    assert through_kernel(y)
    y.square().sum().backward()
    mine = x.grad.clone()
    x.grad = None
    gru(x)[0].square().sum().backward()
    torch.testing.assert_close(mine, x.grad, rtol=1e-4, atol=1e-5)


def test_layouts_the_kernel_does_not_implement_go_to_nn_gru():
    gru = make_gru()
    assert gru_forward(gru, torch.zeros(0, 5, 20)).shape == (0, 5, 48)
    x = torch.randn(2, 5, 20)
    for other in (
        nn.GRU(20, 8, batch_first=True, bias=False),
        nn.GRU(20, 8, batch_first=False),
    ):
        assert torch.equal(gru_forward(other, x), other(x)[0])


def test_detector_training_step_equals_native_in_fp32():
    # The whole model: same logits, same loss gradients for every parameter.
    cfg = DetectorCfg(gru_hidden=32, dim=32, num_heads=4, mlp_dim=64, head_hidden=16)
    content = torch.randn(4, 2, 2048, generator=torch.Generator().manual_seed(6))
    style = torch.randn(4, 10, 1, 512, generator=torch.Generator().manual_seed(7))
    target = torch.tensor([0.0, 1.0, 1.0, 0.0])
    results = []
    for kernel in (False, True):
        torch.manual_seed(0)
        model = build_detector(cfg).eval()
        model.style_gru.cpu_kernel = kernel
        with autocast_for("fp32", torch.device("cpu")):
            logits = model(content, style)
        bce_loss(logits, target).backward()
        results.append((logits.detach(), [p.grad for p in model.parameters()]))
    (native_logits, native_grads), (kernel_logits, kernel_grads) = results
    torch.testing.assert_close(kernel_logits, native_logits, rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(kernel_grads, native_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-3, atol=1e-5)


def test_plain_products_where_no_packed_ones_exist(monkeypatch):
    # CPUs without oneDNN's bf16 (no AVX-512) or builds without MKL use plain products.
    import model.gru

    monkeypatch.setattr(model.gru, "_onednn_bf16", lambda: False)
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: False)
    gru = make_gru()
    x = torch.randn(3, 6, 20, generator=torch.Generator().manual_seed(8))
    for mine, theirs in zip(
        outputs_and_grads(gru, x, gru_forward), outputs_and_grads(gru, x, native), strict=True
    ):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = gru_forward(gru, x)
    assert nn.functional.cosine_similarity(low.flatten(), gru(x)[0].flatten(), dim=0) > 0.999
