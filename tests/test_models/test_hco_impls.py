"""Every ``hco_impl`` of the backbone against the authors' form."""
import pytest
import torch

from conftest import rel_err, resolve_impl
from mmvheat.models import VHeat
from mmvheat.models.backbones.heat_conduction import HeatConductionOperator
from mmvheat.models.backbones.vheat import HCO_IMPLS
from test_vheat import SMALL, SMALL_PRE, randomise


def outputs_and_grads(model, x):
    xi = x.clone().requires_grad_()
    outs = model(xi)
    sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum()
        for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return outs, xi.grad, grads


@pytest.mark.parametrize('arch', [SMALL, SMALL_PRE])
@pytest.mark.parametrize('impl',
                         ['dense', 'matmul', 'matmul-split', 'fft', 'auto'])
def test_forward_backward_match_reference_impl(arch, impl, request):
    """Outputs, input gradients and every parameter's gradient equal the
    ``reference`` implementation's on the same weights, at odd sizes
    (``matmul-split``: the default with the DCT split from length 4, so
    every stage's maps take the even/odd split)."""
    impl = resolve_impl(request, impl)
    model = VHeat(arch, out_indices=(0, 1, 2, 3), img_size=64,
                  drop_path_rate=0.)
    randomise(model)
    for size in [(64, 64), (45, 70)]:
        x = torch.randn(2, 3, *size)
        model.set_hco_impl('reference')
        ref = outputs_and_grads(model, x)
        model.set_hco_impl(impl)
        ours = outputs_and_grads(model, x)
        for a, b in zip(ours[0], ref[0]):
            assert rel_err(a, b) < 1e-5
        assert rel_err(ours[1], ref[1]) < 1e-5
        for name, grad in ref[2].items():
            assert rel_err(ours[2][name], grad) < 1e-4, name


@pytest.mark.parametrize('impl', HCO_IMPLS)
def test_deployed_impls_agree(impl):
    model = VHeat(SMALL, out_indices=(0, 3), img_size=64).eval()
    randomise(model)
    x = torch.randn(1, 3, 50, 64)
    with torch.no_grad():
        expect = model(x)
        model.switch_to_deploy()
        model.set_hco_impl(impl)
        for a, b in zip(model(x), expect):
            assert rel_err(a, b) < 1e-5


def test_reference_impl_layout_and_switching():
    model = VHeat(SMALL, hco_impl='reference')
    assert model.hco_impl == 'reference'
    assert all(b.reference_layout and b.op.impl == 'reference'
               for b in model.blocks())
    model.set_hco_impl('fft')
    assert not any(b.reference_layout for b in model.blocks())
    assert {b.op.impl for b in model.blocks()} == {'fft'}
    with pytest.raises(ValueError, match="hco_impl must be one of .*'conv'"):
        VHeat(SMALL, hco_impl='conv')


@pytest.mark.parametrize('dtype,tol', [(torch.bfloat16, 0.1),
                                       (torch.float16, 0.02)])
def test_autocast_close_to_fp32_at_224(dtype, tol):
    """Forward and backward under CPU autocast are finite and within
    ``tol`` (max error over max magnitude) of fp32."""
    model = VHeat(SMALL, out_indices=(0, 3), drop_path_rate=0.)
    x = torch.randn(2, 3, 224, 224)
    ref = outputs_and_grads(model, x)
    with torch.autocast('cpu', dtype=dtype):
        half = outputs_and_grads(model, x)
    for a, b in zip(half[0], ref[0]):
        assert torch.isfinite(a).all() and rel_err(a.float(), b) < tol
    assert torch.isfinite(half[1]).all() and rel_err(half[1], ref[1]) < tol


@pytest.mark.parametrize('impl', ['dense', 'matmul', 'fft'])
@pytest.mark.parametrize('dtype,tol', [(torch.bfloat16, 0.1),
                                       (torch.float16, 0.01)])
def test_autocast_operator_at_1024(impl, dtype, tol):
    """The operator on the 256x256 map a 1024 input gives stage 0 (where
    ``matmul`` splits each axis twice). bf16's 8-bit mantissa through two
    256-term sums per transform costs up to ~6% (dense); the FFT form
    computes in fp32 and stays within 1%."""
    op = HeatConductionOperator(4, impl=impl)
    x = torch.randn(1, 256, 256, 4)
    fve = torch.randn(256, 256, 4) * 0.1
    ref = op(x, fve)
    with torch.autocast('cpu', dtype=dtype):
        out = op(x, fve)
        out.float().square().sum().backward()
    assert torch.isfinite(out).all()
    assert rel_err(out.float(), ref) < tol
    assert all(torch.isfinite(p.grad).all() for p in op.parameters())


def test_torch_compile_smoke():
    """``torch.compile`` works on the backbone and gives the same outputs."""
    model = VHeat(dict(depths=[1, 1, 1, 1], dims=8), out_indices=(0, 3),
                  img_size=32, hco_impl='matmul').eval()
    x = torch.randn(1, 3, 32, 32)
    compiled = torch.compile(model)
    with torch.no_grad():
        expect = model(x)
        got = compiled(x)
    for a, b in zip(got, expect):
        assert rel_err(a, b) < 1e-5
