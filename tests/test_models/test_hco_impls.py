"""Every ``hco_impl`` of the backbone against the authors' model."""
import pytest
import torch

from helpers.impls import resolve_impl
from helpers.numerics import rel_err
from helpers.reference import SMALL, SMALL_PRE, randomised_reference
from mmvheat.checkpoint import map_legacy_keys
from mmvheat.models import VHeat
from mmvheat.models.backbones.heat_conduction import HeatConductionOperator
from mmvheat.ops import HCO_IMPLS


def outputs_and_grads(model, x):
    xi = x.clone().requires_grad_()
    outs = model(xi)
    sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum()
        for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return outs, xi.grad, map_legacy_keys(grads)


@pytest.mark.parametrize('arch', [SMALL, SMALL_PRE])
@pytest.mark.parametrize('impl', ['matmul', 'split-small', 'fft'])
def test_forward_backward_match_the_authors_model(arch, impl, request):
    """Outputs, input gradients and every parameter's gradient equal the
    authors' model's on the same weights, at odd sizes (``split-small``:
    the 'split' filter from length 4, so every stage's maps take the
    even/odd split)."""
    impl = resolve_impl(request, impl)
    model = VHeat(arch, out_indices=(0, 1, 2, 3), img_size=64,
                  drop_path_rate=0., hco_impl=impl)
    ref, _ = randomised_reference(model, outnorm=True)
    model.train()
    for size in [(64, 64), (45, 70)]:
        x = torch.randn(2, 3, *size)
        theirs = outputs_and_grads(ref, x)
        ours = outputs_and_grads(model, x)
        for a, b in zip(ours[0], theirs[0]):
            assert rel_err(a, b) < 1e-5
        assert rel_err(ours[1], theirs[1]) < 1e-5
        assert ours[2].keys() == theirs[2].keys()
        for name, grad in theirs[2].items():
            assert rel_err(ours[2][name], grad) < 1e-4, name


@pytest.mark.parametrize('impl', HCO_IMPLS)
def test_deployed_impls_agree(impl):
    model = VHeat(SMALL, out_indices=(0, 1, 2, 3), img_size=64).eval()
    other = VHeat(SMALL, out_indices=(0, 1, 2, 3), img_size=64,
                  hco_impl=impl).eval()
    randomised_reference(model, outnorm=True)
    other.load_state_dict(model.state_dict())
    other.switch_to_deploy()
    x = torch.randn(1, 3, 50, 64)
    with torch.no_grad():
        for a, b in zip(other(x), model(x)):
            assert rel_err(a, b) < 1e-5


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


@pytest.mark.parametrize('impl', HCO_IMPLS)
@pytest.mark.parametrize('dtype,tol', [(torch.bfloat16, 0.1),
                                       (torch.float16, 0.01)])
def test_autocast_operator_at_1024(impl, dtype, tol):
    """The operator on the 256x256 map a 1024 input gives stage 0 (where
    ``split`` splits each axis once). bf16's 8-bit mantissa through two
    256-term sums per transform costs up to ~6% (dense); the FFT form
    computes in fp32 and stays within 1%."""
    op = HeatConductionOperator(4)
    x = torch.randn(1, 256, 256, 4)
    fve = torch.randn(256, 256, 4) * 0.1
    ref = op(x, fve, impl=impl)
    with torch.autocast('cpu', dtype=dtype):
        out = op(x, fve, impl=impl)
        out.float().square().sum().backward()
    assert torch.isfinite(out).all()
    assert rel_err(out.float(), ref) < tol
    assert all(torch.isfinite(p.grad).all() for p in op.parameters())


