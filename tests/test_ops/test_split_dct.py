"""The even/odd split of the DCT: exact at every depth and length, its
pieces, and the fixed rule that picks it."""
import itertools

import pytest
import torch

from helpers.numerics import rel_err
from mmvheat.ops import (
    dct_bases,
    dct_matrix,
    dense_filter,
    filters,
    heat_filter,
    split_filter,
)
from mmvheat.ops.split_dct import (
    axis_plan,
    fold,
    split_depth,
    split_lengths,
    unfold,
)

# odd, even, power-of-two and prime lengths; square and not
SIZES = [(7, 7), (13, 9), (16, 32), (12, 20), (17, 31), (24, 11), (1, 5),
         (2, 3)]


def _data(h, w, c=3, b=2, dtype=torch.float64):
    u = torch.randn(b, h, w, c, dtype=dtype)
    factors = torch.rand(h, w, c, dtype=dtype)
    return u, factors, dct_bases(h, w, dtype=dtype)


@pytest.mark.parametrize('size', SIZES)
def test_every_depth_equals_the_dense_products(size):
    """Every number of splits along each axis (down to parts of length 1)
    gives the dense filter's values in float64."""
    h, w = size
    u, factors, bases = _data(h, w)
    ref = dense_filter(u, factors, bases)
    depths = list(itertools.product(range(split_depth(h, min_length=2) + 1),
                                     range(split_depth(w, min_length=2) + 1)))
    assert len(depths) > 1
    for depth in depths:
        out = split_filter(u, factors, bases, depth)
        assert out.shape == u.shape and out.dtype == torch.float64
        assert rel_err(out, ref) < 1e-12, depth


def test_gradients_are_exact():
    """gradcheck (float64, finite differences) through two splits along W
    and one along H, for the input and the damping factors."""
    u, factors, bases = _data(6, 12, c=2, b=1)
    u.requires_grad_()
    factors.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, f: split_filter(a, f, bases, (1, 2)), (u, factors))


def test_reads_a_channel_slice():
    """``u`` as the HCO passes it: half the channels of a wider tensor."""
    wide = torch.randn(2, 10, 12, 8)
    factors = torch.rand(10, 12, 4)
    bases = dct_bases(10, 12)
    u = wide[..., :4]
    assert not u.is_contiguous()
    out = split_filter(u, factors, bases, (2, 1))
    assert rel_err(out, dense_filter(u.contiguous(), factors, bases)) < 1e-6


@pytest.mark.parametrize('n', [7, 8])
def test_fold_and_unfold_invert_each_other(n):
    """``unfold(s / 2, d / 2)`` gives back ``x`` (the middle of an odd
    length comes from ``s`` alone)."""
    x = torch.randn(3, n, 5)
    s, d = fold(x, 1)
    m, m_odd = split_lengths(n)
    assert s.shape[1] == m and d.shape[1] == m_odd
    torch.testing.assert_close(s[:, 0], x[:, 0] + x[:, -1])
    torch.testing.assert_close(d[:, 0], x[:, 0] - x[:, -1])
    half_d = torch.cat([d, torch.zeros(3, m - m_odd, 5)], dim=1) / 2
    torch.testing.assert_close(unfold(s / 2, half_d, 1, n), x)


def test_plan_parts_cover_every_frequency_once():
    """The parts' frequency slices partition the axis, and each part's
    forward matrix has as many rows as it has frequencies."""
    for n, depth in [(16, 3), (12, 2), (9, 1), (20, 2)]:
        plan = axis_plan(dct_matrix(n), depth)
        assert plan.depth == depth
        seen = sorted(i for f in plan.freqs for i in range(n)[f])
        assert seen == list(range(n))
        for mat, f in zip(plan.forward, plan.freqs):
            assert mat.shape[0] == len(range(n)[f])


def test_split_after_an_odd_length_is_refused():
    """18 -> 9 -> 5: the even half of 9 is not symmetric."""
    assert axis_plan(dct_matrix(18), 2).lengths == (18, 9)
    with pytest.raises(ValueError, match='odd length 9 again'):
        axis_plan(dct_matrix(18), 3)


def test_the_fixed_rule():
    """The 'split' filter's rule: one split from 256 on CPUs, none on
    other devices; an odd part is the last one split."""
    expect = {7: 0, 56: 0, 128: 0, 255: 0, 256: 1, 257: 1, 1024: 1}
    assert {n: split_depth(n) for n in expect} == expect
    assert {n: split_depth(n, 'cuda') for n in expect} == dict.fromkeys(
        expect, 0)
    assert split_depth(20, min_length=5, max_depth=9) == 3  # 20, 10, 5
    assert split_depth(384, min_length=96, max_depth=9) == 3


def test_split_filter_dispatches_by_the_rule(monkeypatch):
    """``split`` calls the split with the rule's depths per axis, the same
    with and without autograd, and is the dense filter itself (bit for bit)
    where no axis splits; ``matmul`` never splits."""
    calls = []
    real = filters.split_filter

    def spy(u, factors, bases, depths):
        calls.append(depths)
        return real(u, factors, bases, depths)
    monkeypatch.setattr(filters, 'split_filter', spy)
    u, k = torch.randn(1, 56, 256, 2), torch.rand(56, 256, 2)
    out = heat_filter(u, k, impl='split')
    assert calls == [(0, 1)]
    # closer to the exact (float64) result than the dense fp32 products
    # are: 256-term sums become 128-term ones
    exact = dense_filter(u.double(), k.double())
    assert rel_err(out.double(), exact) < 1e-4
    u, k = torch.randn(1, 56, 40, 2), torch.rand(56, 40, 2)
    torch.testing.assert_close(heat_filter(u, k, impl='split'),
                               dense_filter(u, k), rtol=0, atol=0)
    heat_filter(torch.randn(1, 56, 256, 2), torch.rand(56, 256, 2),
                impl='matmul')
    # off the CPU (here the meta device) nothing splits
    heat_filter(torch.empty(1, 56, 256, 2, device='meta'),
                torch.empty(56, 256, 2, device='meta'), impl='split')
    assert calls == [(0, 1)]
    u, k = torch.randn(1, 100, 256, 2), torch.rand(100, 256, 2)
    heat_filter(u.requires_grad_(), k, impl='split').sum().backward()
    heat_filter(u.detach(), k, impl='split')
    assert calls == [(0, 1), (0, 1), (0, 1)]
