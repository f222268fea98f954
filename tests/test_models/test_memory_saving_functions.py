"""The recomputing autograd functions give autograd's exact gradients."""
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from mmvheat.models.backbones.gelu_linear import gelu_linear
from mmvheat.models.backbones.norm_gate import norm_gate


def test_gelu_linear_gradcheck_and_value():
    h = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gelu_linear, (h, w, b))
    torch.testing.assert_close(gelu_linear(h, w, b),
                               F.linear(F.gelu(h), w, b), rtol=0, atol=0)
    out = gelu_linear(h, w, b)
    # only the pre-activation and the weight are kept for backward
    saved = [t for t in out.grad_fn.saved_tensors]
    assert len(saved) == 2 and saved[0] is h


def test_norm_gate_gradcheck_and_value():
    norm = torch.nn.LayerNorm(6).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    u = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    # weight and bias as gradcheck inputs: any object with the LayerNorm's
    # weight, bias and eps takes the recomputing path
    assert torch.autograd.gradcheck(
        lambda u, z, w, b: norm_gate(u, z, SimpleNamespace(
            weight=w, bias=b, eps=1e-5)), (u, z, norm.weight, norm.bias))
    assert torch.autograd.gradcheck(
        lambda u, z: norm_gate(u, z, norm), (u, z))
    out = norm_gate(u, z, norm)
    torch.testing.assert_close(out, norm(u) * F.silu(z))
    out.sum().backward()
    assert norm.weight.grad is not None and norm.bias.grad is not None
    ref_w = torch.autograd.grad((norm(u) * F.silu(z)).sum(), norm.weight)[0]
    torch.testing.assert_close(norm.weight.grad, ref_w)
