"""An exact faster DCT for the heat filter: the even/odd split of DCT-II.

For a length-N axis, the orthonormal DCT-II basis ``D`` (rows are
frequencies) is even about the middle for even frequencies and odd for odd
ones: ``D[k, N-1-i] = (-1)^k D[k, i]``. So with ``m = ceil(N/2)`` and the
folded signal ``s_i = x_i + x_{N-1-i}``, ``d_i = x_i - x_{N-1-i}``
(i < m)::

    X[2k]   = sum_i D[2k, i]   s_i      # m x m product (a scaled DCT-II)
    X[2k+1] = sum_i D[2k+1, i] d_i      # floor(N/2) square (a DCT-IV)

Two half-size products instead of one full one: half the multiply-adds. The
even part is itself a DCT-II of length m (``D[0::2, :m] = D_m / sqrt(2)``
for even N), so it can be split again. For
odd N the middle sample is its own mirror: ``s`` counts it twice (so the
even matrix's last column is halved) and ``d`` is 0 there. The inverse
undoes it: ``a = E^T Y_even``, ``b = O^T Y_odd``, then ``x_i = a_i + b_i``
and ``x_{N-1-i} = a_i - b_i`` (E, O the even and odd rows of D on the first
m positions).

The price of each split is the fold and unfold: a flip and an add/sub pass
forwards, an add/sub, a flip and a concatenation backwards, all memory
bound. :func:`split_filter` splits either axis or both, as often as asked,
and keeps the frequencies in parity blocks between the forward and inverse
transforms (the damping factors are read through strided views, so nothing
is reordered). Along H it works on (B, k, H, C) views, batched over the
other axis, which ran faster here than one (H x H) by (H x W*C) product.
Everything is plain differentiable torch (``split``/``narrow``, ``flip``,
``cat``, ``matmul``), so autograd, autocast, ``torch.compile``
and ONNX export see ordinary ops. How often each axis splits is a fixed
rule of its length and device (:func:`split_depth`).
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch.fx.experimental.symbolic_shapes import is_concrete_int

__all__ = [
    'SPLIT_DEVICES', 'SPLIT_MAX_DEPTH', 'SPLIT_MIN_LENGTH', 'AxisPlan',
    'axis_plan', 'fold', 'split_depth', 'split_filter', 'split_lengths',
    'unfold'
]

# The fixed rule of the 'split' filter (the default), the same with and
# without autograd: on a device of SPLIT_DEVICES, an axis at least
# SPLIT_MIN_LENGTH long is split once; everything else takes the dense
# products (so do lengths a dynamic-shape trace knows only symbolically).
# Measured for whole vHeat-T models on a 2-core CPU (fp32,
# tools/analysis_tools/benchmark.py, docs/benchmark/split_default and
# split128_*): deployed inference at 1024 b1 (maps of 256) ran at 1.05,
# 1.04 and 1.19x the dense throughput in three interleaved sweeps; at 512
# b2 (maps of 128) a split from 128 ran at 0.99, 0.87 and 0.73x, hence 256.
# In training, splits from 128 were 0.99-1.21x the dense throughput at 512
# and 1024. No GPU was measured, so GPUs take the dense products.
SPLIT_DEVICES = ('cpu', )
SPLIT_MIN_LENGTH = 256
SPLIT_MAX_DEPTH = 1


def split_lengths(n: int) -> Tuple[int, int]:
    """Lengths ``(ceil(n/2), floor(n/2))`` of the even and odd parts."""
    return (n + 1) // 2, n // 2


class AxisPlan(NamedTuple):
    """How one axis is transformed: ``depth`` even/odd splits, each applied
    to the even part of the one before, then a dense product.

    The parts, in order: the last even part (``forward[0]``, dense), then
    the odd parts from the deepest split up to the first. Part ``j`` holds
    the frequencies ``freqs[j]`` of the axis (a strided slice).

    Attributes:
        lengths (tuple[int]): Length of the axis at each split (N first).
        forward (tuple[torch.Tensor]): Forward matrix of each part; the
            last even part's has its last column halved when the split
            before it had odd length (the middle sample is in ``s`` twice).
        inverse (tuple[torch.Tensor]): Inverse matrix of each part, from
            the part's frequencies to the positions of the even part it
            came from (``ceil(n/2)`` of them).
        freqs (tuple[slice]): The axis frequencies of each part.
    """
    lengths: Tuple[int, ...]
    forward: Tuple[torch.Tensor, ...]
    inverse: Tuple[torch.Tensor, ...]
    freqs: Tuple[slice, ...]

    @property
    def depth(self) -> int:
        return len(self.forward) - 1


def split_depth(n: int, device_type: str = 'cpu',
                min_length: Optional[int] = None,
                max_depth: Optional[int] = None) -> int:
    """Number of even/odd splits for a length-``n`` axis on a
    ``device_type`` device: none off :data:`SPLIT_DEVICES`; else split
    while the (even) part is at least ``min_length`` long (default
    :data:`SPLIT_MIN_LENGTH`), at most ``max_depth`` times (default
    :data:`SPLIT_MAX_DEPTH`); a part of odd length is split at most once
    more (its even half is not symmetric). A rule of the length and the
    device only; a symbolic length (a dynamic-shape export or compile)
    takes the dense products, with no guard on it."""
    if device_type not in SPLIT_DEVICES or (
            isinstance(n, torch.SymInt) and not is_concrete_int(n)):
        return 0
    min_length = SPLIT_MIN_LENGTH if min_length is None else min_length
    max_depth = SPLIT_MAX_DEPTH if max_depth is None else max_depth
    depth = 0
    while n >= min_length and depth < max_depth:
        depth += 1
        if n % 2:
            break
        n //= 2
    return depth


def axis_plan(basis: torch.Tensor, depth: int) -> AxisPlan:
    """The :class:`AxisPlan` of an axis with DCT basis ``basis`` (N, N),
    split ``depth`` times (0: one dense product)."""
    n = basis.shape[0]
    lengths, odd_fwd, odd_inv, odd_freqs = [], [], [], []
    leaf_fwd = basis
    for level in range(depth):
        if lengths and lengths[-1] % 2:
            raise ValueError(f'cannot split the even part of the odd length '
                             f'{lengths[-1]} again (depth {depth} for '
                             f'N={lengths[0]})')
        m, m_odd = split_lengths(n)
        even, odd = basis[0::2, :m], basis[1::2, :m]
        odd_fwd.append(odd[:, :m_odd].contiguous())
        odd_inv.append(odd.t().contiguous())
        odd_freqs.append(slice(2**level, None, 2**(level + 1)))
        lengths.append(n)
        leaf_fwd = even
        if n % 2:  # the middle sample is in s twice
            leaf_fwd = torch.cat([even[:, :-1], even[:, -1:] * 0.5], dim=1)
        basis, n = even, m
    return AxisPlan(
        tuple(lengths), (leaf_fwd.contiguous(), *odd_fwd[::-1]),
        (basis.t().contiguous(), *odd_inv[::-1]),
        (slice(0, None, 2**depth), *odd_freqs[::-1]))


def fold(x: torch.Tensor, dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(s, d)`` of ``x`` along ``dim``: ``x_i + x_{N-1-i}`` for
    i < ceil(N/2) and ``x_i - x_{N-1-i}`` for i < floor(N/2).

    An even length is cut into its halves with ``split``, whose backward
    concatenates the two gradients (``narrow`` would fill a zero tensor per
    half and add them)."""
    n = x.shape[dim]
    m, m_odd = split_lengths(n)
    if m == m_odd:
        low, high = x.split(m, dim=dim)
        high = high.flip(dim)
        return low + high, low - high
    low = x.narrow(dim, 0, m)
    high = x.narrow(dim, n - m, m).flip(dim)
    return low + high, low.narrow(dim, 0, m_odd) - high.narrow(dim, 0, m_odd)


def unfold(a: torch.Tensor, b: torch.Tensor, dim: int,
           length: int) -> torch.Tensor:
    """Positions in natural order from the parts' inverses ``a`` and ``b``
    (ceil(N/2) long along ``dim``): ``a + b``, then ``a - b`` reversed (for
    odd N the halves share the middle sample). A sum, a difference, a flip
    and a concatenation, whose backward passes are views and single
    passes."""
    m, m_odd = split_lengths(length)
    if m != m_odd:
        a_odd, b_odd = a.narrow(dim, 0, m_odd), b.narrow(dim, 0, m_odd)
    else:
        a_odd, b_odd = a, b
    return torch.cat([a + b, (a_odd - b_odd).flip(dim)], dim=dim)


def _parts(x: torch.Tensor, dim: int, plan: AxisPlan) -> List[torch.Tensor]:
    """The inputs of ``plan``'s parts: fold ``depth`` times along ``dim``."""
    odd = []
    for _ in range(plan.depth):
        x, d = fold(x, dim)
        odd.append(d)
    return [x] + odd[::-1]


def _join(parts: Sequence[torch.Tensor], dim: int,
          plan: AxisPlan) -> torch.Tensor:
    """Undo :func:`_parts` on the parts' inverses."""
    x = parts[0]
    for d, length in zip(parts[1:], plan.lengths[::-1]):
        x = unfold(x, d, dim, length)
    return x


def split_filter(u: torch.Tensor, factors: torch.Tensor,
                 bases: Tuple[torch.Tensor, torch.Tensor],
                 depths: Tuple[int, int]) -> torch.Tensor:
    """``IDCT(factors * DCT(u))`` with ``depths`` (H, W) even/odd splits
    along each axis (0: dense products along it).

    Args:
        u (torch.Tensor): Channels-last (B, H, W, C); a channel slice of a
            wider tensor is read in place.
        factors (torch.Tensor): Damping factors (H, W, C).
        bases (tuple[torch.Tensor, torch.Tensor]): ``(D_H, D_W)`` in
            ``u``'s dtype.
        depths (tuple[int, int]): Splits along H and W, e.g. from
            :func:`split_depth`.

    Returns:
        torch.Tensor: The filtered (B, H, W, C) map.
    """
    b, h, w, c = u.shape
    plan_h = axis_plan(bases[0], depths[0])
    plan_w = axis_plan(bases[1], depths[1])
    columns = []  # per W part: (B, k, H, C) after the H inverse
    for q, (x, mat_w) in enumerate(zip(_parts(u, 2, plan_w), plan_w.forward)):
        y = torch.matmul(mat_w, x.reshape(b * h, x.shape[2], c))
        y = y.view(b, h, -1, c)  # (B, H, k, C): W frequencies of part q
        spectra = []
        for p, (yp, mat_h) in enumerate(
                zip(_parts(y, 1, plan_h), plan_h.forward)):
            z = torch.matmul(mat_h, yp.transpose(1, 2))  # (B, k, n_p, C)
            damp = factors[plan_h.freqs[p], plan_w.freqs[q]]
            damp = damp.transpose(0, 1).to(z.dtype)
            z = z * damp
            spectra.append(torch.matmul(plan_h.inverse[p], z))
        columns.append(_join(spectra, 2, plan_h))
    rows = [torch.matmul(mat, x.transpose(1, 2))  # (B, H, m_w, C)
            for mat, x in zip(plan_w.inverse, columns)]
    return _join(rows, 2, plan_w)
