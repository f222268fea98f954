"""Plain-torch pieces of the Heat Conduction Operator (HCO).

Every function here is a pure function of its arguments, computed in the
graph with no Python-side caches and no shortcuts on sizes, so it traces
with symbolic shapes (``torch.export``, ``torch.onnx.export(dynamo=True)``)
and compiles:

* :func:`dct_matrix` - the orthonormal DCT-II basis ``D_N`` (rows are
  frequencies, columns positions); its transpose is the inverse transform.
* :func:`decay_map` - ``exp(-(w_n^2 + w_m^2))`` on an (H, W) frequency grid.
* :func:`heat_decay` - the damping factors ``decay_map ** k``.
* :func:`separable_transform`, :func:`dct2d`, :func:`idct2d` - the separable
  2-D transforms on channels-last tensors, as two matrix products.
"""
import math
from typing import Optional, Tuple

import torch

__all__ = [
    'dct_matrix', 'dct_bases', 'decay_map', 'dct2d', 'idct2d', 'heat_decay',
    'separable_transform'
]


def _table_dtype(dtype: torch.dtype) -> torch.dtype:
    """Tables are computed in float64 for float64, else in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_size(name: str, size) -> None:
    if isinstance(size, int) and (isinstance(size, bool) or size < 1):
        raise ValueError(f'{name} must be a positive int, got {size!r}')


def dct_matrix(n: int,
               device: Optional[torch.device] = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix of size (n, n).

    ``D[k, i] = sqrt(2/n) * cos(pi * k * (i + 0.5) / n)`` with row 0 further
    divided by sqrt(2), so ``D @ D.T == I``: ``D @ x`` is the DCT of ``x``
    along its first axis and ``D.T @ X`` the inverse. Computed in float32
    (float64 for float64) from ``arange`` (the integers the authors'
    ``linspace`` gives) and cast to ``dtype``.

    Args:
        n (int): The transform length (may be symbolic).
        device (torch.device, optional): Device of the result.
            Defaults to None (the default device).
        dtype (torch.dtype): Dtype of the result. Defaults to float32.

    Returns:
        torch.Tensor: The (n, n) basis, frequencies along dim 0.
    """
    _check_size('n', n)
    work = _table_dtype(dtype)
    index = torch.arange(n, device=device, dtype=work)
    count = torch.full((), n, device=device, dtype=torch.float64)
    pos = (index.view(1, -1) + 0.5) / count.to(work)
    basis = torch.cos(index.view(-1, 1) * pos * torch.pi)
    basis = basis * torch.sqrt(2.0 / count).to(work)
    row_div = torch.where(index == 0, torch.full_like(index, math.sqrt(2)),
                          torch.ones_like(index))
    return (basis / row_div.view(-1, 1)).to(dtype)


def dct_bases(height: int,
              width: int,
              device: Optional[torch.device] = None,
              dtype: torch.dtype = torch.float32
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The bases ``(D_H, D_W)`` of an (H, W) map."""
    return (dct_matrix(height, device, dtype),
            dct_matrix(width, device, dtype))


def decay_map(height: int,
              width: int,
              device: Optional[torch.device] = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The heat-decay factors ``exp(-(w_n^2 + w_m^2))`` on an (H, W) grid.

    ``w_n = n * pi / H`` for n in [0, H) and likewise ``w_m`` over W (the
    authors' ``linspace(0, pi, H + 1)[:H]``, to the last bit). The DC entry
    (0, 0) is exactly 1.

    Args:
        height (int): Number of frequencies along H (may be symbolic).
        width (int): Number of frequencies along W (may be symbolic).
        device (torch.device, optional): Device of the result.
            Defaults to None (the default device).
        dtype (torch.dtype): Dtype of the result. Defaults to float32.

    Returns:
        torch.Tensor: The (H, W) decay map.
    """
    _check_size('height', height)
    _check_size('width', width)
    work = _table_dtype(dtype)

    def freqs(n):
        step = torch.pi / torch.full((), n, device=device,
                                     dtype=torch.float64)
        return torch.arange(n, device=device, dtype=work) * step.to(work)

    w_n = freqs(height).view(-1, 1)
    w_m = freqs(width).view(1, -1)
    return torch.exp(-(w_n * w_n + w_m * w_m)).to(dtype)


def separable_transform(x: torch.Tensor, basis_h: torch.Tensor,
                        basis_w: torch.Tensor) -> torch.Tensor:
    """``basis_h @ x @ basis_w.T`` over the H and W axes of (B, H, W, C).

    Along W first, on a (B*H, W, C) view: that view needs only a unit
    channel stride, so a channel slice of a wider tensor (the HCO's ``u``,
    half of its ``linear`` output) is read in place, without a copy. Then
    along H on the contiguous result, viewed as (B, H, W'*C).

    The views go through (B*H*W, C) and flat forms, so that symbolic
    shapes (``torch.export`` with named dims) only meet facts about H and W
    together, which hold for every size: a direct (B*H, W, C) view of a
    batch of one, or a split of W'*C into (W', C), makes the tracer guard
    on H or W alone (``1 % H != 0``, ``(8 * W) % W == 0``) and demand
    multiples of 32. Every step is a view, as before.
    """
    b, h, w, c = x.shape
    n, m = basis_h.shape[0], basis_w.shape[0]
    x = torch.matmul(basis_w, x.flatten(0, 2).unflatten(0, (b * h, w)))
    x = torch.matmul(basis_h, x.view(b, h, m * c))  # (B, n, m*C)
    return x.view(-1).view(b * n * m, c).view(b, n, m, c)


def dct2d(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over dims 1 and 2 of a (B, H, W, C) tensor."""
    _, h, w, _ = x.shape
    return separable_transform(x, *dct_bases(h, w, x.device, x.dtype))


def idct2d(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2d` (orthonormal IDCT-II) on (B, N, M, C)."""
    _, n, m, _ = x.shape
    basis_h, basis_w = dct_bases(n, m, x.device, x.dtype)
    return separable_transform(x, basis_h.t(), basis_w.t())


def heat_decay(k: torch.Tensor) -> torch.Tensor:
    """Damping factors ``decay_map(H, W)[:, :, None] ** k``.

    Args:
        k (torch.Tensor): Non-negative conductivity exponents (H, W, C).

    Returns:
        torch.Tensor: Factors of shape (H, W, C), in ``k``'s dtype promoted
        with float32.
    """
    h, w = k.shape[:2]
    base = decay_map(h, w, k.device, _table_dtype(k.dtype))
    return torch.pow(base[:, :, None], k)
