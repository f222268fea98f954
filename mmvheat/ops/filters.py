"""Implementations of the heat-conduction filter ``IDCT(factors * DCT(u))``.

All take a channels-last ``u`` of shape (B, H, W, C) (a channel slice of a
wider tensor is fine), damping factors (H, W, C) and optionally the DCT bases
``(D_H, D_W)`` of the map (built here when not given), and return a new
(B, H, W, C) tensor; they agree to float rounding.

* ``'reference'`` - the authors' arithmetic: each 1-D transform is an
  ``F.conv1d`` whose kernel is the (N, N) basis viewed as (N, N, 1), applied
  to a (B, H, W*C) view (along H) and then a (B*H, W, C) view (along W),
  with ``.contiguous()`` copies in between, and the damping as an einsum.
* ``'dense'`` - the same dense products as batched matrix multiplications
  on views (see :func:`~mmvheat.ops.heat.separable_transform`).
* ``'matmul'`` - matrix products with the even/odd split of the DCT along
  every axis long enough for it to pay (:mod:`~mmvheat.ops.split_dct`, a
  fixed rule of the lengths), the dense products otherwise.
* ``'fft'`` - DCT-II filtering as a real FFT of the even (mirror) extension:
  ``IDCT(d * DCT(x))`` is the top-left (H, W) corner of
  ``irfft2(D * rfft2(mirror(x)))`` where ``D`` repeats ``d`` symmetrically,
  ``O(HW log HW)`` instead of ``O(HW (H + W))``. Computed in float32 (or
  float64) even for half-precision inputs (FFTs in fp16/bf16 are missing or
  restricted to powers of two), then cast back.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .autograd import needs_autograd
from .heat import dct_bases, separable_transform
from .split_dct import split_depth, split_filter

FILTER_IMPLS = ('reference', 'dense', 'matmul', 'fft')
Bases = Optional[Tuple[torch.Tensor, torch.Tensor]]


def _bases_for(u: torch.Tensor, bases: Bases) -> Tuple[torch.Tensor, ...]:
    """``bases`` in ``u``'s dtype, or the bases of ``u``'s (H, W) map."""
    if bases is None:
        return dct_bases(u.shape[1], u.shape[2], u.device, u.dtype)
    return tuple(b.to(u.dtype) for b in bases)


def _conv1d_transform(x: torch.Tensor, basis_h: torch.Tensor,
                      basis_w: torch.Tensor) -> torch.Tensor:
    """The authors' separable transform: ``conv1d`` with (N, N, 1) kernels."""
    b, h, w, c = x.shape
    x = F.conv1d(x.contiguous().view(b, h, -1), basis_h.view(h, h, 1))
    x = F.conv1d(x.contiguous().view(-1, w, c), basis_w.view(w, w, 1))
    return x.contiguous().view(b, h, w, -1)


def reference_filter(u: torch.Tensor, factors: torch.Tensor,
                     bases: Bases = None) -> torch.Tensor:
    """The heat filter computed as the authors' released code does."""
    dct_h, dct_w = _bases_for(u, bases)
    x = _conv1d_transform(u, dct_h, dct_w)
    x = torch.einsum('bnmc,nmc->bnmc', x, factors.to(x.dtype))
    return _conv1d_transform(x, dct_h.t().contiguous(), dct_w.t().contiguous())


def dense_filter(u: torch.Tensor, factors: torch.Tensor,
                 bases: Bases = None) -> torch.Tensor:
    """The heat filter as four dense matrix products on views."""
    dct_h, dct_w = _bases_for(u, bases)
    x = separable_transform(u, dct_h, dct_w)
    factors = factors.to(x.dtype)
    if needs_autograd(x, factors):
        x = x * factors
    else:
        x.mul_(factors)  # x is a fresh product
    return separable_transform(x, dct_h.t(), dct_w.t())


def matmul_filter(u: torch.Tensor, factors: torch.Tensor,
                  bases: Bases = None) -> torch.Tensor:
    """The heat filter as matrix products: the even/odd split as often along
    each axis as :func:`~mmvheat.ops.split_dct.split_depth` says (a fixed
    rule of the length, and of whether autograd records), the dense
    products where it says none."""
    grad = needs_autograd(u, factors)
    depths = (split_depth(u.shape[1], grad), split_depth(u.shape[2], grad))
    if depths == (0, 0):
        return dense_filter(u, factors, bases)
    return split_filter(u, factors, _bases_for(u, bases), depths)


def _mirror_index(n: int, length: int, device) -> torch.Tensor:
    """Frequency of each of the ``length`` DFT bins of a 2n-point mirror
    extension: k for k < n, 2n - k above n; bin n (always 0 in the
    spectrum) reads frequency 0."""
    k = torch.arange(length, device=device)
    folded = torch.where(k < n, k, 2 * n - k)
    return torch.where(k == n, torch.zeros_like(k), folded)


def fft_filter(u: torch.Tensor, factors: torch.Tensor,
               bases: Bases = None) -> torch.Tensor:
    """The heat filter through a real 2-D FFT of the mirror extension
    (``bases`` is accepted for a common signature and not needed)."""
    b, h, w, c = u.shape
    work = torch.float64 if u.dtype == torch.float64 else torch.float32
    with torch.autocast(u.device.type, enabled=False):
        x = u.to(work)
        x = torch.cat([x, x.flip(1)], dim=1)
        x = torch.cat([x, x.flip(2)], dim=2)
        spec = torch.fft.rfft2(x, dim=(1, 2))  # (B, 2H, W + 1, C)
        d = factors.to(work)
        d = d.index_select(0, _mirror_index(h, 2 * h, u.device))
        d = d.index_select(1, _mirror_index(w, w + 1, u.device))
        y = torch.fft.irfft2(spec * d, s=(2 * h, 2 * w), dim=(1, 2))
        return y[:, :h, :w].to(u.dtype)


FILTERS = {
    'reference': reference_filter,
    'dense': dense_filter,
    'matmul': matmul_filter,
    'fft': fft_filter
}
