"""The heat filter's implementations agree with the authors' form."""
import pytest
import torch

from conftest import rel_err
from mmvheat.ops import (FILTER_IMPLS, autotune_choices, clear_autotune,
                         heat_decay, heat_filter)
from mmvheat.ops import autotune

SIZES = [(7, 7), (13, 9), (1, 5), (16, 32), (28, 31)]


def inputs(h, w, c=6, b=2, dtype=torch.float32):
    u = torch.randn(b, h, w, c, dtype=dtype)
    k = torch.rand(h, w, c, dtype=dtype) * 3
    return u, k


def filter_with_grads(impl, u, k, dtype=torch.float32):
    """Output and gradients w.r.t. the input, the damping factors and the
    conductivity of a fixed weighted sum of the output."""
    ui = u.to(dtype).clone().requires_grad_()
    ki = k.to(dtype).clone().requires_grad_()
    factors = heat_decay(ki)
    factors.retain_grad()
    out = heat_filter(ui, factors, impl=impl)
    weight = torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)
    (out * weight).sum().backward()
    return out, ui.grad, factors.grad, ki.grad


@pytest.mark.parametrize('impl', ['matmul', 'fft', 'auto'])
@pytest.mark.parametrize('size', SIZES)
def test_values_and_gradients_match_reference(impl, size):
    """Outputs and gradients w.r.t. the input and the damping factors equal
    the conv1d reference to 1e-5 relative in fp32. The gradient w.r.t. the
    conductivity k goes through ``log(decay) * decay ** k`` and is
    ill-conditioned: the reference itself is off by up to ~1e-4 from float64
    there, so each form must be as close to float64 as the reference is."""
    u, k = inputs(*size)
    ref = filter_with_grads('reference', u, k)
    ours = filter_with_grads(impl, u, k)
    assert ours[0].dtype == torch.float32 and ours[0].shape == u.shape
    for a, b in zip(ours[:3], ref[:3]):
        assert rel_err(a, b) < 1e-5
    exact = filter_with_grads('reference', u, k, torch.float64)[3]
    ref_err = rel_err(ref[3].double(), exact)
    assert rel_err(ours[3].double(), exact) <= max(1e-5, 1.5 * ref_err)


@pytest.mark.parametrize('impl', FILTER_IMPLS)
def test_exact_in_float64(impl):
    u, k = inputs(11, 6, dtype=torch.float64)
    ref = heat_filter(u, heat_decay(k), impl='reference')
    out = heat_filter(u, heat_decay(k), impl=impl)
    assert out.dtype == torch.float64
    assert rel_err(out, ref) < 1e-12


@pytest.mark.parametrize('dtype,tol', [(torch.bfloat16, 2e-2),
                                       (torch.float16, 2e-3)])
@pytest.mark.parametrize('impl', ['matmul', 'fft', 'auto'])
def test_half_precision_inputs(impl, dtype, tol):
    """Half inputs give half outputs close to fp32; the FFT computes in fp32
    internally (no FFT in half precision on the CPU)."""
    u, k = inputs(12, 10)
    ref = heat_filter(u, heat_decay(k), impl='reference')
    out = heat_filter(u.to(dtype), heat_decay(k).to(dtype), impl=impl)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert rel_err(out.float(), ref) < tol


def test_auto_measures_once_per_key_and_picks_a_candidate(monkeypatch):
    clear_autotune()
    calls = []
    real = autotune.measure

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(autotune, 'measure', counting)
    u, k = inputs(9, 8)
    for _ in range(3):
        heat_filter(u, heat_decay(k), impl='auto')
    heat_filter(u.to(torch.bfloat16), heat_decay(k), impl='auto')
    assert calls == [(1, 9, 8, 6), (1, 9, 8, 6)]  # one sample of each
    choices = autotune_choices()
    assert len(choices) == 2
    assert set(choices.values()) <= {'matmul', 'fft'}


def test_auto_follows_the_faster_measurement(monkeypatch):
    clear_autotune()
    monkeypatch.setattr(autotune, 'measure',
                        lambda *a, **k: dict(matmul=2.0, fft=1.0))
    u, k = inputs(5, 4)
    assert autotune.choose_filter(u) == 'fft'
    clear_autotune()
    monkeypatch.setenv('MMVHEAT_HCO_AUTOTUNE', '0')
    assert autotune.choose_filter(u) == 'matmul'
    assert autotune_choices() == {}


def test_unknown_impl():
    u, k = inputs(3, 3)
    with pytest.raises(ValueError, match="unknown heat filter impl 'dense'"):
        heat_filter(u, heat_decay(k), impl='dense')


def test_auto_leaves_the_global_rng_alone():
    """Measuring must not consume random numbers: a resumed run measures at
    another point of training than the run it continues."""
    clear_autotune()
    u, k = inputs(10, 7)
    state = torch.get_rng_state()
    heat_filter(u, heat_decay(k), impl='auto')
    assert len(autotune_choices()) == 1
    assert torch.equal(torch.get_rng_state(), state)
