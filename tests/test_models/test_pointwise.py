"""PointwiseConv2d computes nn.Conv2d's 1x1 convolution, values and
gradients, in fp32, float64 and under autocast."""
import pytest
import torch
import torch.nn as nn

from mmvheat.models.backbones.pointwise import PointwiseConv2d


def pair(cin=6, cout=5, bias=True):
    ours = PointwiseConv2d(cin, cout, bias=bias)
    conv = nn.Conv2d(cin, cout, 1, bias=bias)
    conv.load_state_dict(ours.state_dict())
    return ours, conv


def run(module, x):
    x = x.detach().clone().requires_grad_()
    out = module(x)
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out.float() * weights).sum().backward()
    grads = [x.grad] + [p.grad for p in module.parameters()]
    return out, grads


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('channels_last', [True, False])
def test_equals_conv2d_values_and_gradients(bias, channels_last):
    ours, conv = pair(bias=bias)
    assert isinstance(ours, nn.Conv2d)
    assert ours.state_dict().keys() == conv.state_dict().keys()
    x = torch.randn(2, 6, 7, 9)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    a, ga = run(ours, x)
    b, gb = run(conv, x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), conv(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_under_autocast_follows_conv2d(dtype):
    ours, conv = pair()
    x = torch.randn(2, 6, 7, 9).to(memory_format=torch.channels_last)
    with torch.autocast('cpu', dtype=dtype):
        a, ga = run(ours, x)
        b, gb = run(conv, x)
    assert a.dtype == b.dtype == dtype
    tol = 2e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    for u, v in zip(ga, gb):
        assert u.dtype == v.dtype
        torch.testing.assert_close(u, v, rtol=tol, atol=tol)


def test_gradcheck_and_saves_its_input():
    ours = PointwiseConv2d(3, 4).double()
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ours, (x, ))
    out = ours(x)
    assert out.grad_fn.saved_tensors[0] is x


def test_wrong_channels():
    with pytest.raises(ValueError, match=r'expects \(B, 3, H, W\) input'):
        PointwiseConv2d(3, 4)(torch.randn(1, 5, 2, 2))
