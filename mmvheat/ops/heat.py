"""Plain-torch pieces of the Heat Conduction Operator (HCO).

Everything here is a pure function of its arguments, computed in the graph
(no Python-side caches), so it traces, compiles and exports:

* :func:`dct_matrix` - the orthonormal DCT-II basis ``D_N`` (rows are
  frequencies, columns positions); its transpose is the inverse transform.
* :func:`decay_map` - ``exp(-(w_n^2 + w_m^2))`` on an (H, W) frequency grid.
* :func:`heat_decay` - the damping factors ``decay_map ** k``.
* :func:`dct2d` / :func:`idct2d` - the separable 2-D transforms on
  channels-last tensors, done as two matrix products.

Building a basis costs ``N^2`` cosines, nothing next to the products that use
it; the backbone builds each stage's bases once per forward and shares them
between the stage's blocks.
"""
import math
from typing import Optional, Tuple

import torch

__all__ = [
    'dct_matrix', 'dct_bases', 'decay_map', 'dct2d', 'idct2d', 'heat_decay',
    'separable_transform'
]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Tables are computed in float64 for float64, else in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _as_size(name: str, size):
    """``size`` as a positive int (a symbolic int is passed through; a 0-d
    integer tensor, as ``torch.jit.trace`` can give for shapes, becomes an
    int)."""
    if torch.is_tensor(size) and size.dim() == 0 and not (
            size.is_floating_point() or size.is_complex()):
        size = int(size)
    if isinstance(size, torch.SymInt):
        return size
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f'{name} must be a positive int, got {size!r}')
    return size


def dct_matrix(n: int,
               device: Optional[torch.device] = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix of size (n, n).

    ``D[k, i] = sqrt(2/n) * cos(pi * k * (i + 0.5) / n)`` with row 0 further
    divided by sqrt(2), so ``D @ D.T == I``: ``D @ x`` is the DCT of ``x``
    along its first axis and ``D.T @ X`` the inverse.

    For float32 and narrower dtypes the table is computed in float32 as the
    authors' ``get_cos_map`` does (``linspace`` positions and frequencies,
    ``torch.pi``) and then cast; float64 tables are computed in float64.

    Args:
        n (int): The transform length.
        device (torch.device, optional): Device of the result.
            Defaults to None (the default device).
        dtype (torch.dtype): Dtype of the result. Defaults to float32.

    Returns:
        torch.Tensor: The (n, n) basis, frequencies along dim 0.
    """
    n = _as_size('n', n)
    kw = dict(device=device, dtype=_compute_dtype(dtype))
    pos = (torch.linspace(0, n - 1, n, **kw).view(1, -1) + 0.5) / n
    freq = torch.linspace(0, n - 1, n, **kw).view(-1, 1)
    basis = torch.cos(freq * pos * torch.pi) * math.sqrt(2 / n)
    # row 0 is further divided by sqrt(2) (out of place: traceable and
    # exportable; dividing the other rows by 1 leaves them as they are)
    row_div = torch.ones(n, 1, **kw)
    row_div[0] = math.sqrt(2)
    return (basis / row_div).to(dtype)


def dct_bases(height: int, width: int, device: Optional[torch.device] = None,
              dtype: torch.dtype = torch.float32
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The bases ``(D_H, D_W)`` of an (H, W) map (one table when H == W)."""
    basis_h = dct_matrix(height, device, dtype)
    if width == height:
        return basis_h, basis_h
    return basis_h, dct_matrix(width, device, dtype)


def decay_map(height: int,
              width: int,
              device: Optional[torch.device] = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The heat-decay factors ``exp(-(w_n^2 + w_m^2))`` on an (H, W) grid.

    ``w_n = n * pi / H`` for n in [0, H) (``linspace(0, pi, H + 1)[:H]``) and
    likewise ``w_m`` over W. The DC entry (0, 0) is exactly 1.

    Args:
        height (int): Number of frequencies along H.
        width (int): Number of frequencies along W.
        device (torch.device, optional): Device of the result.
            Defaults to None (the default device).
        dtype (torch.dtype): Dtype of the result. Defaults to float32.

    Returns:
        torch.Tensor: The (H, W) decay map.
    """
    height = _as_size('height', height)
    width = _as_size('width', width)
    kw = dict(device=device, dtype=_compute_dtype(dtype))
    w_n = torch.linspace(0, torch.pi, height + 1, **kw)[:height]
    w_m = torch.linspace(0, torch.pi, width + 1, **kw)[:width]
    w_n, w_m = w_n.view(-1, 1), w_m.view(1, -1)
    return torch.exp(-(torch.pow(w_n, 2) + torch.pow(w_m, 2))).to(dtype)


def separable_transform(x: torch.Tensor, basis_h: torch.Tensor,
                        basis_w: torch.Tensor) -> torch.Tensor:
    """``basis_h @ x @ basis_w.T`` over the H and W axes of (B, H, W, C).

    Along W first, on a (B*H, W, C) view: that view needs only a unit
    channel stride, so a channel slice of a wider tensor (the HCO's ``u``,
    half of its ``linear`` output) is read in place, without a copy. Then
    along H on the contiguous result, viewed as (B, H, W'*C).
    """
    b, h, w, c = x.shape
    n, m = basis_h.shape[0], basis_w.shape[0]
    x = torch.matmul(basis_w, x.reshape(b * h, w, c))  # (B*H, m, C)
    x = torch.matmul(basis_h, x.reshape(b, h, m * c))  # (B, n, m*C)
    return x.reshape(b, n, m, c)


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
    base = decay_map(h, w, k.device, _compute_dtype(k.dtype))
    return torch.pow(base[:, :, None], k)
