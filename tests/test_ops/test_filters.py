"""The heat filter's implementations agree with the authors' form."""
import pytest
import torch

from helpers.impls import resolve_impl
from helpers.numerics import rel_err
from mmvheat.analysis.reference_vheat import conv1d_heat_filter
from mmvheat.ops import DEFAULT_IMPL, HCO_IMPLS, heat_decay, heat_filter

SIZES = [(7, 7), (13, 9), (1, 5), (16, 32), (28, 31)]


def inputs(h, w, c=6, b=2, dtype=torch.float32):
    u = torch.randn(b, h, w, c, dtype=dtype)
    k = torch.rand(h, w, c, dtype=dtype) * 3
    return u, k


def filter_with_grads(fn, u, k, dtype=torch.float32):
    """Output and gradients w.r.t. the input, the damping factors and the
    conductivity of a fixed weighted sum of the output."""
    ui = u.to(dtype).clone().requires_grad_()
    ki = k.to(dtype).clone().requires_grad_()
    factors = heat_decay(ki)
    factors.retain_grad()
    out = fn(ui, factors)
    weight = torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)
    (out * weight).sum().backward()
    return out, ui.grad, factors.grad, ki.grad


def by_name(impl):
    return lambda u, factors: heat_filter(u, factors, impl=impl)


@pytest.fixture(params=['matmul', 'split', 'split-small', 'fft'])
def impl(request):
    """Each implementation; ``split-small`` is ``split`` with the even/odd
    split from length 4, so that these small maps take it."""
    return resolve_impl(request, request.param)


def test_names_written_once():
    assert HCO_IMPLS == ('matmul', 'split', 'fft')
    assert DEFAULT_IMPL == 'split'


@pytest.mark.parametrize('size', SIZES)
def test_values_and_gradients_match_reference(impl, size):
    """Outputs and gradients w.r.t. the input and the damping factors equal
    the conv1d reference to 1e-5 relative in fp32. The gradient w.r.t. the
    conductivity k goes through ``log(decay) * decay ** k`` and is
    ill-conditioned: in fp32 the forms land 2e-6 to 7e-5 from float64
    there (the split and FFT round differently from the dense products), so
    each must be within 1e-4 of float64, or as close as the reference."""
    u, k = inputs(*size)
    ref = filter_with_grads(conv1d_heat_filter, u, k)
    ours = filter_with_grads(by_name(impl), u, k)
    assert ours[0].dtype == torch.float32 and ours[0].shape == u.shape
    for a, b in zip(ours[:3], ref[:3]):
        assert rel_err(a, b) < 1e-5
    exact = filter_with_grads(conv1d_heat_filter, u, k, torch.float64)[3]
    ref_err = rel_err(ref[3].double(), exact)
    assert rel_err(ours[3].double(), exact) <= max(1e-4, 3 * ref_err)


@pytest.mark.parametrize('impl', HCO_IMPLS)
def test_exact_in_float64(impl, split_everywhere):
    """In float64 every form equals the dense products written out."""
    from mmvheat.ops import dct_matrix
    u, k = inputs(11, 6, dtype=torch.float64)
    d_h, d_w = dct_matrix(11, dtype=torch.float64), dct_matrix(
        6, dtype=torch.float64)
    spectrum = torch.einsum('nh,bhwc,mw->bnmc', d_h, u, d_w) * heat_decay(k)
    ref = torch.einsum('nh,bnmc,mw->bhwc', d_h, spectrum, d_w)
    out = heat_filter(u, heat_decay(k), impl=impl)
    assert out.dtype == torch.float64
    assert rel_err(out, ref) < 1e-12


@pytest.mark.parametrize('dtype,tol', [(torch.bfloat16, 2e-2),
                                       (torch.float16, 2e-3)])
def test_half_precision_inputs(impl, dtype, tol):
    """Half inputs give half outputs close to fp32; the FFT computes in fp32
    internally (no FFT in half precision on the CPU)."""
    u, k = inputs(12, 10)
    ref = conv1d_heat_filter(u, heat_decay(k))
    out = heat_filter(u.to(dtype), heat_decay(k).to(dtype), impl=impl)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert rel_err(out.float(), ref) < tol


def test_split_rule_is_a_rule_of_the_length_only():
    """One split from 256 long, with and without autograd alike."""
    from mmvheat.ops import split_depth
    assert [split_depth(n) for n in (56, 128, 255, 256, 1024)] == [
        0, 0, 0, 1, 1]
    u, k = inputs(256, 258, c=2, b=1)
    with torch.no_grad():
        a = heat_filter(u, heat_decay(k), impl='split')
    b = heat_filter(u.requires_grad_(), heat_decay(k), impl='split')
    torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)


def test_unknown_impl():
    u, k = inputs(3, 3)
    with pytest.raises(ValueError, match="unknown heat filter impl 'fast'"):
        heat_filter(u, heat_decay(k), impl='fast')
