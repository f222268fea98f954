import math

import pytest
import torch
import torch.nn.functional as F

from mmvheat.ops import (
    dct2d,
    dct_matrix,
    decay_map,
    heat_decay,
    heat_filter,
    idct2d,
    resize_freq_embed,
    separable_transform,
)


def dct_formula(n):
    """DCT-II basis from the reference's formula, in float64."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = math.sqrt(2 / n) * torch.cos(math.pi * k * (i + 0.5) / n)
    d[0] /= math.sqrt(2)
    return d


@pytest.mark.parametrize('n', [1, 2, 7, 16, 57])
def test_dct_matrix_formula_and_orthonormal(n):
    d = dct_matrix(n)
    assert d.shape == (n, n) and d.dtype == torch.float32
    torch.testing.assert_close(d.double(), dct_formula(n), atol=5e-6, rtol=0)
    torch.testing.assert_close(d @ d.t(), torch.eye(n), atol=1e-5, rtol=0)
    d64 = dct_matrix(n, dtype=torch.float64)
    torch.testing.assert_close(d64, dct_formula(n), atol=1e-12, rtol=0)


@pytest.mark.parametrize('size', [(1, 1), (5, 9), (14, 14)])
def test_dct2d_inverse_exact_and_separable(size):
    x = torch.randn(2, *size, 3, dtype=torch.float64)
    spec = dct2d(x)
    expected = torch.einsum('nh,bhwc,mw->bnmc', dct_formula(size[0]), x,
                            dct_formula(size[1]))
    torch.testing.assert_close(spec, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(idct2d(spec), x, atol=1e-6, rtol=0)
    # orthonormal: energy is preserved (Parseval)
    torch.testing.assert_close(spec.pow(2).sum(), x.pow(2).sum(), rtol=1e-6,
                               atol=0)


def test_decay_map_values():
    d = decay_map(4, 6)
    assert d.shape == (4, 6)
    assert d[0, 0].item() == 1.0
    n, m = 3, 5
    expected = math.exp(-((n * math.pi / 4)**2 + (m * math.pi / 6)**2))
    assert d[n, m].item() == pytest.approx(expected, rel=1e-6)
    assert (d[1:, :] < 1).all() and (d[:, 1:] < 1).all()


def test_tables_computed_in_graph_and_usable_for_autograd():
    """No cache: each call builds a fresh table (traceable), and a table
    made under inference mode does not block training afterwards."""
    with torch.inference_mode():
        a = dct_matrix(8)
    assert dct_matrix(8) is not a
    torch.testing.assert_close(dct_matrix(8), a.clone(), rtol=0, atol=0)
    assert dct_matrix(8, dtype=torch.float64).dtype == torch.float64
    assert decay_map(3, 5).shape == (3, 5) and decay_map(5, 3).shape == (5, 3)
    u = torch.randn(1, 8, 8, 2, requires_grad=True)
    idct2d(dct2d(u)).sum().backward()
    assert u.grad is not None


def test_transform_reads_a_channel_slice_in_place():
    """The HCO's ``u`` is half of its linear output: the transform takes it
    as a strided view and gives the same result as on a contiguous copy."""
    wide = torch.randn(2, 6, 9, 10)
    u = wide[..., :5]
    assert not u.is_contiguous()
    basis_h, basis_w = dct_matrix(6), dct_matrix(9)
    torch.testing.assert_close(
        separable_transform(u, basis_h, basis_w),
        separable_transform(u.contiguous(), basis_h, basis_w),
        rtol=1e-6, atol=1e-6)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match='positive int'):
        dct_matrix(0)
    with pytest.raises(ValueError, match='positive int'):
        decay_map(3, -1)


class TestHeatFilterProperties:
    shape = (2, 9, 12, 4)

    def k(self, scale=1.0):
        return torch.rand(*self.shape[1:], dtype=torch.float64) * scale

    def test_zero_conductivity_is_identity(self):
        u = torch.randn(*self.shape, dtype=torch.float64)
        k = torch.zeros(*self.shape[1:], dtype=torch.float64)
        out = heat_filter(u, heat_decay(k))
        torch.testing.assert_close(out, u, atol=1e-6, rtol=0)

    def test_spatial_mean_preserved(self):
        u = torch.randn(*self.shape, dtype=torch.float64)
        out = heat_filter(u, heat_decay(self.k(5.0)))
        torch.testing.assert_close(out.mean((1, 2)), u.mean((1, 2)),
                                   atol=1e-6, rtol=0)
        # and it did smooth: the output is closer to its mean
        assert out.var((1, 2)).sum() < u.var((1, 2)).sum()

    def test_two_steps_add_exponents(self):
        u = torch.randn(*self.shape, dtype=torch.float64)
        k1, k2 = self.k(), self.k(2.0)
        twice = heat_filter(heat_filter(u, heat_decay(k1)), heat_decay(k2))
        once = heat_filter(u, heat_decay(k1 + k2))
        torch.testing.assert_close(twice, once, atol=1e-6, rtol=0)

    def test_never_increases_l2_norm_and_symmetric(self):
        for _ in range(5):
            u = torch.randn(*self.shape, dtype=torch.float64)
            v = torch.randn(*self.shape, dtype=torch.float64)
            f = heat_decay(self.k(3.0))
            assert heat_filter(u, f).norm() <= u.norm() * (1 + 1e-9)
            # <A u, v> == <u, A v>
            lhs = (heat_filter(u, f) * v).sum()
            rhs = (u * heat_filter(v, f)).sum()
            assert lhs.item() == pytest.approx(rhs.item(), rel=1e-9)


class TestResizeFreqEmbed:

    @pytest.mark.parametrize('size', [(7, 7), (56, 56), (13, 4), (1, 1)])
    def test_same_size(self, size):
        """Eager: the FVE itself. The resize it stands for is an exact copy
        there (bicubic weights (0, 1, 0, 0)): values and gradient pass
        through bit for bit, so a traced graph that keeps it agrees."""
        fve = torch.randn(*size, 3, requires_grad=True)
        assert resize_freq_embed(fve, size) is fve
        out = F.interpolate(fve.permute(2, 0, 1)[None], size=size,
                            mode='bicubic', align_corners=False)
        out = out[0].permute(1, 2, 0)
        torch.testing.assert_close(out, fve, rtol=0, atol=0)
        grad = torch.randn_like(out)
        out.backward(grad)
        torch.testing.assert_close(fve.grad, grad, rtol=0, atol=0)

    @pytest.mark.parametrize('tracer', ['export', 'jit'])
    def test_traced_sizes_keep_the_resize(self, tracer):
        """Traced at the FVE's own size with a dynamic map size
        (``torch.export``) or sizes recorded as tensors
        (``torch.jit.trace``), the graph still resizes, so it is right at
        other sizes too."""
        fve = torch.randn(6, 6, 3)

        class Resize(torch.nn.Module):

            def forward(self, x):
                return resize_freq_embed(fve, (x.shape[1], x.shape[2]))

        example = torch.zeros(1, 6, 6, 3)
        if tracer == 'export':
            dim = torch.export.Dim('side', min=2, max=64)
            run = torch.export.export(
                Resize(), (example, ),
                dynamic_shapes=({1: dim, 2: dim}, )).module()
        else:
            run = torch.jit.trace(Resize(), example, check_trace=False)
        for side in (6, 9):
            expected = F.interpolate(
                fve.permute(2, 0, 1)[None], size=(side, side),
                mode='bicubic', align_corners=False)[0].permute(1, 2, 0)
            torch.testing.assert_close(run(torch.zeros(1, side, side, 3)),
                                       expected)

    @pytest.mark.parametrize('src,dst', [((7, 7), (4, 9)), ((14, 14), (1, 5)),
                                         ((1, 1), (3, 2)), ((5, 5), (1, 1))])
    def test_bicubic_shapes_and_values(self, src, dst):
        fve = torch.randn(*src, 6)
        out = resize_freq_embed(fve, dst)
        assert out.shape == (*dst, 6)
        expected = F.interpolate(
            fve.permute(2, 0, 1)[None], size=dst, mode='bicubic',
            align_corners=False)[0].permute(1, 2, 0)
        torch.testing.assert_close(out, expected)

    def test_bad_rank(self):
        with pytest.raises(ValueError, match=r'\(H, W, C\)'):
            resize_freq_embed(torch.zeros(2, 3), (2, 2))
