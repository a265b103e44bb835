"""A CPU kernel for the StyleGRU's `nn.GRU` with the same parameters and the same maths.

Why: training from cache is nearly all StyleGRU, and on a CPU `nn.GRU` spends it on
overhead, not arithmetic. Every step it multiplies a (B, H) state by an unpacked weight
that oneDNN re-lays-out each call (under bf16 autocast it also casts the weight each
step), and autograd records about a dozen nodes per step whose backward pass redoes the
same small products. Here each layer is one autograd node:

- the input projections of all steps are one matrix product per direction;
- the recurrent weight is packed once per call (oneDNN for bf16, MKL for fp32), so each
  step is one packed (B, H) x (H, 3H) product, six element-wise ops written into
  preallocated buffers and a cast of the state for the next product;
- the backward pass walks the steps once for the state gradient (one packed product per
  step) and then forms every weight gradient as one large product over all steps.

The state and the gate arithmetic stay fp32; only the matrix products run in bf16 when
the caller is under CPU bf16 autocast, as `nn.GRU`'s products do there. In fp32 the
outputs and gradients equal `nn.GRU`'s to rounding (tests/model/test_gru.py). Measured in
bench/README.md ("The StyleGRU's CPU kernel").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

StepProduct = Callable[[Tensor], Tensor]


def gru_forward(gru: nn.GRU, x: Tensor) -> Tensor:
    """`gru(x)[0]` for a batch-first GRU started from zeros, through the CPU kernel where
    it applies (gradients wanted, CPU tensors, fp32 or CPU bf16 autocast, a non-empty
    batch) and through `nn.GRU` elsewhere: a GPU has cuDNN, and without gradients
    `nn.GRU` runs oneDNN's fused GRU on a CPU, faster than this kernel's forward (batch
    512: 1.6 against 1.9 s in fp32, 0.9 against 1.2 s in bf16; bench/README.md)."""
    dtype = _kernel_dtype(x)
    if dtype is None or not _fits(gru, x) or not _wants_grad(gru, x):
        return gru(x)[0]
    with torch.autocast("cpu", enabled=False):
        h = x.float().transpose(0, 1).contiguous()  # (T, B, I): one step is one row block
        for layer in range(gru.num_layers):
            if layer and gru.training and gru.dropout:
                h = nn.functional.dropout(h, gru.dropout, training=True)
            h = GRULayer.apply(h, dtype, *_layer_parameters(gru, layer))
    return h.transpose(0, 1)


def _fits(gru: nn.GRU, x: Tensor) -> bool:
    # The layouts the kernel implements: batch first, biases, no projection, some rows.
    return gru.batch_first and gru.bias and not gru.proj_size and x.numel() > 0


def _wants_grad(gru: nn.GRU, x: Tensor) -> bool:
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(p.requires_grad for p in gru.parameters())


def _kernel_dtype(x: Tensor) -> torch.dtype | None:
    # The dtype of the matrix products, or None where nn.GRU should run instead.
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return None
    if not torch.is_autocast_enabled("cpu"):
        return torch.float32
    if torch.get_autocast_dtype("cpu") == torch.bfloat16:
        return torch.bfloat16
    return None


def _layer_parameters(gru: nn.GRU, layer: int) -> list[Tensor]:
    suffixes = ("", "_reverse") if gru.bidirectional else ("",)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return [getattr(gru, f"{name}_l{layer}{suffix}") for suffix in suffixes for name in names]


def _packed_product(weight: Tensor, rows: int) -> StepProduct:
    """x -> x @ weight.T for x of `rows` rows, with `weight` laid out once for the BLAS."""
    if weight.dtype == torch.bfloat16 and _onednn_bf16():
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)
        return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
    if weight.dtype == torch.float32 and torch.backends.mkl.is_available():
        packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, rows)
        return lambda x: torch.ops.mkl._mkl_linear(x, packed, weight, None, rows)
    transposed = weight.t()
    return lambda x: x @ transposed


def _onednn_bf16() -> bool:
    # oneDNN's bf16 products need AVX-512 (or AMX); elsewhere a plain product is correct.
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _steps(direction: int, length: int) -> range:
    return range(length) if direction == 0 else range(length - 1, -1, -1)


class GRULayer(torch.autograd.Function):
    """One GRU layer, one or both directions, from a zero state.

    Inputs: x (T, B, I) fp32, the dtype of the matrix products, then per direction
    weight_ih (3H, I), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,) as `nn.GRU` holds
    them (gates in the order r, z, n). Output: (T, B, D*H), directions side by side.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dtype: torch.dtype, *params: Tensor) -> Tensor:
        directions = len(params) // 4
        steps, batch, _ = x.shape
        hidden = params[1].shape[1]
        x_low = x.reshape(steps * batch, -1).to(dtype)
        # Per direction, in time order: pre-activations of the hidden products (with
        # bias), the r and z gates, the candidate n, and the state h after each step.
        gh = x.new_empty(directions, steps, batch, 3 * hidden)
        rz = x.new_empty(directions, steps, batch, 2 * hidden)
        n = x.new_empty(directions, steps, batch, hidden)
        out = x.new_empty(directions, steps, batch, hidden)
        w_ih, w_hh = [], []
        for d in range(directions):
            weight_ih, weight_hh, bias_ih, bias_hh = params[4 * d : 4 * d + 4]
            w_ih.append(weight_ih.to(dtype))
            w_hh.append(weight_hh.to(dtype).contiguous())
            gi = torch.addmm(bias_ih.to(dtype), x_low, w_ih[d].t()).float()
            buffers = (gh[d], rz[d], n[d], out[d])
            _forward_direction(d, gi.view(steps, batch, -1), bias_hh, w_hh[d], buffers)
        ctx.dtype = dtype
        ctx.save_for_backward(x_low, *w_ih, *w_hh, gh, rz, n, out)
        return out.permute(1, 2, 0, 3).reshape(steps, batch, directions * hidden)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x_low, *saved = ctx.saved_tensors
        gh, rz, n, out = saved[-4:]
        directions, steps, batch, hidden = out.shape
        w_ih, w_hh = saved[:directions], saved[directions : 2 * directions]
        grad_out = grad_out.view(steps, batch, directions, hidden).permute(2, 0, 1, 3)
        h_prev = _previous_states(out)
        gi_factor, gh_factor, z = _gate_factors(gh, rz, n, h_prev)
        grads: list[Tensor | None] = []
        grad_x = None
        for d in range(directions):
            d_gi, d_gh = _backward_direction(
                d, grad_out[d], gi_factor[d], gh_factor[d], z[d], w_hh[d], ctx.dtype
            )
            d_gi_low = d_gi.to(ctx.dtype)
            if ctx.needs_input_grad[0]:
                part = d_gi_low @ w_ih[d]
                grad_x = part if grad_x is None else grad_x + part
            grads += [
                (d_gi_low.t() @ x_low).float(),
                (d_gh.t() @ h_prev[d].reshape(steps * batch, hidden).to(ctx.dtype)).float(),
                d_gi.sum(0),
                d_gh.float().sum(0),
            ]
        if grad_x is not None:
            grad_x = grad_x.float().view(steps, batch, -1)
        return (grad_x, None, *grads)


def _forward_direction(
    direction: int, gi: Tensor, bias_hh: Tensor, weight_hh: Tensor, buffers: Sequence[Tensor]
) -> None:
    """Run one direction over all steps, filling (gh, rz, n, out), each (T, B, ...)."""
    gh, rz, n, out = buffers
    steps, batch, hidden = out.shape
    product = _packed_product(weight_hh, batch)
    # Views of each step, made once: slicing inside the loop costs more than the maths.
    gi_rz, gi_n = gi[..., : 2 * hidden].unbind(0), gi[..., 2 * hidden :].unbind(0)
    gh_t, gh_rz, gh_n = gh.unbind(0), gh[..., : 2 * hidden].unbind(0), gh[..., 2 * hidden :]
    gh_n = gh_n.unbind(0)
    rz_t, r_t, z_t = rz.unbind(0), rz[..., :hidden].unbind(0), rz[..., hidden:].unbind(0)
    n_t, out_t = n.unbind(0), out.unbind(0)
    h = out.new_zeros(batch, hidden)
    h_low = h.to(weight_hh.dtype)
    for t in _steps(direction, steps):
        torch.add(product(h_low), bias_hh, out=gh_t[t])
        torch.add(gi_rz[t], gh_rz[t], out=rz_t[t]).sigmoid_()
        torch.addcmul(gi_n[t], r_t[t], gh_n[t], out=n_t[t]).tanh_()
        # h' = (1 - z) * n + z * h
        h = torch.lerp(n_t[t], h, z_t[t], out=out_t[t])
        h_low = h.to(weight_hh.dtype)


def _previous_states(out: Tensor) -> Tensor:
    # The state each step started from: zeros first, then the previous step's output
    # (the previous step in the direction's own order).
    h_prev = torch.zeros_like(out)
    h_prev[0, 1:] = out[0, :-1]
    if len(out) == 2:
        h_prev[1, :-1] = out[1, 1:]
    return h_prev


def _gate_factors(
    gh: Tensor, rz: Tensor, n: Tensor, h_prev: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Per step, what the state gradient dh is multiplied by to give the gradients of the
    input and hidden pre-activations: both (D, T, B, 3, H), and z.

    With h' = (1 - z) n + z h, n = tanh(a_n + r g_n), r = sigmoid(a_r), z = sigmoid(a_z):
    d a_n = dh (1 - z)(1 - n^2); d a_z = dh (h - n) z (1 - z);
    d a_r = d a_n g_n r (1 - r); the hidden n pre-activation g_n gets d a_n r.
    """
    hidden = n.shape[-1]
    r, z = rz[..., :hidden], rz[..., hidden:]
    n_factor = (1 - z) * (1 - n * n)
    z_factor = (h_prev - n) * z * (1 - z)
    r_factor = n_factor * gh[..., 2 * hidden :] * r * (1 - r)
    gi_factor = torch.stack([r_factor, z_factor, n_factor], dim=3)
    gh_factor = torch.stack([r_factor, z_factor, n_factor * r], dim=3)
    return gi_factor, gh_factor, z


def _backward_direction(
    direction: int,
    grad_out: Tensor,
    gi_factor: Tensor,
    gh_factor: Tensor,
    z: Tensor,
    weight_hh: Tensor,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Walk one direction's steps backwards; return the gradients of its input and hidden
    pre-activations, (T*B, 3H) each, in time order (the hidden one in `dtype`)."""
    steps, batch, hidden = grad_out.shape
    product = _packed_product(weight_hh.t().contiguous(), batch)
    d_gi = grad_out.new_empty(steps, batch, 3, hidden)
    d_gh = torch.empty(steps, batch, 3, hidden, dtype=dtype)
    grad_t, z_t = grad_out.unbind(0), z.unbind(0)
    gi_factor_t, gh_factor_t = gi_factor.unbind(0), gh_factor.unbind(0)
    d_gi_t, d_gh_t = d_gi.unbind(0), d_gh.unbind(0)
    carry = None
    for t in reversed(_steps(direction, steps)):
        dh = grad_t[t] if carry is None else grad_t[t] + carry
        torch.mul(dh.unsqueeze(1), gi_factor_t[t], out=d_gi_t[t])
        torch.mul(dh.unsqueeze(1), gh_factor_t[t], out=d_gh_t[t])
        # dh flows to the previous state through z directly and through the products.
        carry = torch.addcmul(product(d_gh_t[t].view(batch, 3 * hidden)), dh, z_t[t])
    return d_gi.view(steps * batch, 3 * hidden), d_gh.view(steps * batch, 3 * hidden)
