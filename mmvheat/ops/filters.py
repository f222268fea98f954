"""The heat-conduction filter ``IDCT(factors * DCT(u))``, three ways.

All take a channels-last ``u`` of shape (B, H, W, C) (a channel slice of a
wider tensor is fine), damping factors (H, W, C) and the DCT bases
``(D_H, D_W)`` of the map (built here when not given), and return a new
(B, H, W, C) tensor. They agree to float rounding; which one a model uses is
chosen once, when it is built (``VHeat(hco_impl=...)``):

* ``'split'`` (the default) - the exact even/odd split of the DCT
  (:mod:`~mmvheat.ops.split_dct`) once along each axis at least
  :data:`~mmvheat.ops.split_dct.SPLIT_MIN_LENGTH` (256) long, on CPU
  tensors (:data:`~mmvheat.ops.split_dct.SPLIT_DEVICES`): half the
  multiply-adds there, plus memory-bound folds; dense products on shorter
  axes, on other devices (not measured there) and on lengths a
  dynamic-shape trace knows only symbolically. It changes nothing below
  1024-pixel inputs.
* ``'matmul'`` - always four dense matrix products on views
  (:func:`~mmvheat.ops.heat.separable_transform`).
* ``'fft'`` (opt-in) - a real 2-D FFT of the mirror extension:
  ``IDCT(d * DCT(x))`` is the top-left (H, W) corner of
  ``irfft2(D * rfft2(mirror(x)))``, where ``D`` repeats ``d``
  symmetrically; ``O(HW log HW)``. Computed in float32 (float64 for
  float64) under any autocast, then cast back. 5-6x slower than
  ``'matmul'`` on CPUs up to 256x256 maps; cuFFT may win on large maps.
"""
from typing import Callable, Dict, Optional, Tuple

import torch

from .heat import dct_bases, separable_transform
from .split_dct import split_depth, split_filter

__all__ = ['HCO_IMPLS', 'DEFAULT_IMPL', 'heat_filter', 'dense_filter',
           'fft_filter', 'split_dct_filter']

Bases = Optional[Tuple[torch.Tensor, torch.Tensor]]


def _bases_for(u: torch.Tensor, bases: Bases) -> Tuple[torch.Tensor, ...]:
    """``bases`` in ``u``'s dtype, or the bases of ``u``'s (H, W) map."""
    if bases is None:
        return dct_bases(u.shape[1], u.shape[2], u.device, u.dtype)
    return tuple(b.to(u.dtype) for b in bases)


def dense_filter(u: torch.Tensor, factors: torch.Tensor,
                 bases: Bases = None) -> torch.Tensor:
    """The heat filter as four dense matrix products on views."""
    dct_h, dct_w = _bases_for(u, bases)
    x = separable_transform(u, dct_h, dct_w) * factors.to(u.dtype)
    return separable_transform(x, dct_h.t(), dct_w.t())


def split_dct_filter(u: torch.Tensor, factors: torch.Tensor,
                     bases: Bases = None) -> torch.Tensor:
    """The heat filter with the even/odd split along each axis the fixed
    rule :func:`~mmvheat.ops.split_dct.split_depth` splits (a rule of the
    axis length and the device); dense products along the others."""
    device = u.device.type
    depths = (split_depth(u.shape[1], device),
              split_depth(u.shape[2], device))
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
    _, h, w, _ = u.shape
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


FILTERS: Dict[str, Callable] = {
    'matmul': dense_filter,
    'split': split_dct_filter,
    'fft': fft_filter,
}
# The names, written once: VHeat, the tools and the tests read them here.
HCO_IMPLS = tuple(FILTERS)
DEFAULT_IMPL = 'split'


def heat_filter(u: torch.Tensor,
                factors: torch.Tensor,
                impl: str = DEFAULT_IMPL,
                bases: Bases = None) -> torch.Tensor:
    """The HCO's linear heat-conduction step: DCT, damp, IDCT.

    Args:
        u (torch.Tensor): Channels-last input (B, H, W, C).
        factors (torch.Tensor): Damping per frequency and channel (H, W, C),
            e.g. :func:`~mmvheat.ops.heat_decay` of the conductivity.
        impl (str): One of :data:`HCO_IMPLS` (see the module docstring).
            Defaults to 'split'.
        bases (tuple[torch.Tensor, torch.Tensor], optional): The DCT bases
            ``(D_H, D_W)`` of the map, to share between blocks. Defaults to
            None (built here).

    Returns:
        torch.Tensor: Filtered (B, H, W, C), in ``u``'s dtype.
    """
    fn = FILTERS.get(impl)
    if fn is None:
        raise ValueError(f'unknown heat filter impl {impl!r}; choose one of '
                         f'{HCO_IMPLS}')
    return fn(u, factors, bases)
