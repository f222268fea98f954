"""The recomputing functions give plain autograd's values and gradients,
also under autocast, and do not keep the elementwise results alive."""
import weakref

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvheat.models.backbones.pointwise import PointwiseConv2d
from mmvheat.models.backbones.recompute import act_then, norm_gate


class RecordingNorm(nn.LayerNorm):
    """A LayerNorm that remembers its last output weakly."""

    def forward(self, x):
        out = super().forward(x)
        self.last = weakref.ref(out)
        return out


class RecordingGELU(nn.GELU):

    def forward(self, x):
        out = super().forward(x)
        self.last = weakref.ref(out)
        return out


def grads(fn, *inputs, params=()):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    got = torch.autograd.grad((out.float() * weights).sum(),
                              leaves + list(params))
    return out, got


def make_norm(cls=nn.LayerNorm):
    norm = cls(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm


@pytest.mark.parametrize('autocast', [None, torch.bfloat16, torch.float16])
def test_norm_gate_equals_plain_autograd(autocast):
    norm = make_norm()
    u, z = torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6)
    with torch.autocast('cpu', dtype=autocast or torch.bfloat16,
                        enabled=autocast is not None):
        ours = grads(lambda a, b: norm_gate(norm, a, b), u, z,
                     params=norm.parameters())
        plain = grads(lambda a, b: norm(a) * F.silu(b), u, z,
                      params=norm.parameters())
    assert ours[0].dtype == plain[0].dtype
    torch.testing.assert_close(ours[0], plain[0], rtol=0, atol=0)
    for a, b in zip(ours[1], plain[1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('autocast', [None, torch.bfloat16, torch.float16])
def test_act_then_equals_plain_autograd(autocast):
    fc = nn.Conv2d(8, 3, 1)
    act = nn.GELU()
    h = torch.randn(2, 8, 4, 5).to(memory_format=torch.channels_last)
    with torch.autocast('cpu', dtype=autocast or torch.bfloat16,
                        enabled=autocast is not None):
        ours = grads(lambda x: act_then(fc, act, x), h,
                     params=fc.parameters())
        plain = grads(lambda x: fc(act(x)), h, params=fc.parameters())
    torch.testing.assert_close(ours[0], plain[0], rtol=0, atol=0)
    for a, b in zip(ours[1], plain[1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_float64_gradcheck():
    norm = make_norm().double()
    u = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: norm_gate(norm, a, b),
                                    (u, z))
    fc = nn.Linear(6, 4).double()
    assert torch.autograd.gradcheck(lambda a: act_then(fc, nn.GELU(), a),
                                    (u, ))


@pytest.mark.parametrize('fc_type', [nn.Conv2d, PointwiseConv2d])
@pytest.mark.parametrize('autocast', [False, True])
def test_elementwise_results_are_not_kept(autocast, fc_type):
    """With autograd, the norm's output and the GELU's output are freed
    after the forward (they are recomputed); plain autograd keeps both."""
    norm, act = make_norm(RecordingNorm), RecordingGELU()
    fc = fc_type(6, 4, 1)  # as the MLP's fc2
    u, z = (torch.randn(2, 3, 6, requires_grad=True) for _ in range(2))
    # under autocast the MLP's hidden tensor comes from fc1 in bf16
    h = torch.randn(2, 6, 3, 5, dtype=torch.bfloat16 if autocast else None,
                    requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        gate = norm_gate(norm, u, z)
        mlp = act_then(fc, act, h)
        assert norm.last() is None and act.last() is None
        plain_gate = norm(u) * F.silu(z)
        plain_mlp = fc(act(h))
        assert norm.last() is not None and act.last() is not None
    (gate.sum() + mlp.sum() + plain_gate.sum() + plain_mlp.sum()).backward()


def test_without_autograd_runs_in_place_with_same_values():
    norm = make_norm()
    u, z = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    expect = norm(u) * F.silu(z)
    with torch.no_grad():
        torch.testing.assert_close(norm_gate(norm, u, z.clone()), expect)
        h = torch.randn(2, 3, 6)
        fc = nn.Linear(6, 4)
        expect = fc(F.gelu(h))
        torch.testing.assert_close(act_then(fc, nn.GELU(), h.clone()), expect)
