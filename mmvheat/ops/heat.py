"""Plain-torch pieces of the Heat Conduction Operator (HCO).

Everything here is derived data or a pure function of its inputs:

* :func:`dct_matrix` – the orthonormal DCT-II basis ``D_N`` (rows are
  frequencies, columns positions); its transpose is the inverse transform.
* :func:`decay_map` – ``exp(-(w_n^2 + w_m^2))`` on an (H, W) frequency grid.
* :func:`resize_freq_embed` – the one function that resizes a frequency value
  embedding (FVE) to a feature map's grid (bicubic, ``align_corners=False``).
* :func:`dct2d` / :func:`idct2d` – the separable 2-D transforms on
  channels-last tensors, done as two matrix products.

The bases and decay maps are cached per (size, device, dtype). The cache holds
plain tensors that nothing writes to, so an entry can never go stale: a new
size, device or dtype is a new key.
"""
import math
from collections import OrderedDict
from typing import Callable, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    'dct_matrix', 'decay_map', 'dct2d', 'idct2d', 'heat_decay',
    'resize_freq_embed', 'clear_cache'
]

_CACHE_SIZE = 128
_cache: 'OrderedDict[tuple, torch.Tensor]' = OrderedDict()


def clear_cache() -> None:
    """Drop every cached DCT basis and decay map."""
    _cache.clear()


def _cached(key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Return the tensor cached under ``key``, making it on a miss.

    Tensors are built outside inference mode and without autograd, so a table
    first made under ``torch.inference_mode()`` can later serve training.
    """
    table = _cache.get(key)
    if table is None:
        with torch.inference_mode(False), torch.no_grad():
            table = make()
        _cache[key] = table
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return table


def _as_size(name: str, size) -> int:
    """``size`` as a positive int (a 0-d integer tensor, as
    ``torch.jit.trace`` gives for shapes, is accepted)."""
    if torch.is_tensor(size) and size.dim() == 0 and not (
            size.is_floating_point() or size.is_complex()):
        size = int(size)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f'{name} must be a positive int, got {size!r}')
    return size


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Tables are computed in float64 for float64, else in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def dct_matrix(n: int,
               device: torch.device = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix of size (n, n).

    ``D[k, i] = sqrt(2/n) * cos(pi * k * (i + 0.5) / n)`` with row 0 further
    divided by sqrt(2), so ``D @ D.T == I``: ``D @ x`` is the DCT of ``x``
    along its first axis and ``D.T @ X`` the inverse.

    For float32 and narrower dtypes the table is computed in float32 exactly
    as the authors' ``get_cos_map`` (``linspace`` positions and frequencies,
    ``torch.pi``) and then cast, so fp32 results match theirs bit for bit;
    float64 tables are computed in float64.

    Args:
        n (int): The transform length.
        device (torch.device, optional): Device of the result.
            Defaults to None (the default device).
        dtype (torch.dtype): Dtype of the result. Defaults to float32.

    Returns:
        torch.Tensor: The (n, n) basis, frequencies along dim 0. Shared
        (cached): do not modify it in place.
    """
    n = _as_size('n', n)
    device = torch.device(device) if device is not None else torch.empty(
        0).device

    def make():
        kw = dict(device=device, dtype=_compute_dtype(dtype))
        pos = (torch.linspace(0, n - 1, n, **kw).view(1, -1) + 0.5) / n
        freq = torch.linspace(0, n - 1, n, **kw).view(-1, 1)
        basis = torch.cos(freq * pos * torch.pi) * math.sqrt(2 / n)
        basis[0, :] = basis[0, :] / math.sqrt(2)
        return basis.to(dtype)

    return _cached(('dct', n, device, dtype), make)


def decay_map(height: int,
              width: int,
              device: torch.device = None,
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
        torch.Tensor: The (H, W) decay map. Shared (cached): do not modify it
        in place.
    """
    height = _as_size('height', height)
    width = _as_size('width', width)
    device = torch.device(device) if device is not None else torch.empty(
        0).device

    def make():
        kw = dict(device=device, dtype=_compute_dtype(dtype))
        w_n = torch.linspace(0, torch.pi, height + 1, **kw)[:height]
        w_m = torch.linspace(0, torch.pi, width + 1, **kw)[:width]
        w_n, w_m = w_n.view(-1, 1), w_m.view(1, -1)
        return torch.exp(-(torch.pow(w_n, 2) + torch.pow(w_m, 2))).to(dtype)

    return _cached(('decay', height, width, device, dtype), make)


def _transform(x: torch.Tensor, basis_h: torch.Tensor,
               basis_w: torch.Tensor) -> torch.Tensor:
    """``basis_h @ x @ basis_w.T`` over the H and W axes of (B, H, W, C)."""
    b, h, w, c = x.shape
    n, m = basis_h.shape[0], basis_w.shape[0]
    # Views only, no copies. Along H: (n, h) @ (B, h, W*C) -> (B, n, W*C).
    x = torch.matmul(basis_h, x.reshape(b, h, w * c))
    # Along W: (m, w) @ (B*n, w, C) -> (B*n, m, C).
    x = torch.matmul(basis_w, x.reshape(b * n, w, c))
    return x.reshape(b, n, m, c)


def dct2d(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over dims 1 and 2 of a (B, H, W, C) tensor."""
    _, h, w, _ = x.shape
    return _transform(x, dct_matrix(h, x.device, x.dtype),
                      dct_matrix(w, x.device, x.dtype))


def idct2d(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2d` (orthonormal IDCT-II) on (B, N, M, C)."""
    _, n, m, _ = x.shape
    return _transform(x,
                      dct_matrix(n, x.device, x.dtype).t(),
                      dct_matrix(m, x.device, x.dtype).t())


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


def resize_freq_embed(freq_embed: torch.Tensor,
                      size: Tuple[int, int]) -> torch.Tensor:
    """Resize a frequency value embedding (H, W, C) to ``size`` = (h, w).

    Bicubic interpolation with ``align_corners=False``, as the authors do when
    a feature map and its stage's FVE differ in size. Returns the input itself
    when the size already matches. Sides of length 1 (in or out) work.

    Args:
        freq_embed (torch.Tensor): The FVE, shape (H, W, C).
        size (tuple[int, int]): The target (h, w).

    Returns:
        torch.Tensor: The FVE on the (h, w) grid, shape (h, w, C).
    """
    if freq_embed.dim() != 3:
        raise ValueError('a frequency value embedding must have shape '
                         f'(H, W, C), got {tuple(freq_embed.shape)}')
    size = (int(size[0]), int(size[1]))
    if tuple(freq_embed.shape[:2]) == size:
        return freq_embed
    grid = freq_embed.permute(2, 0, 1).unsqueeze(0)
    grid = F.interpolate(grid, size=size, mode='bicubic', align_corners=False)
    return grid[0].permute(1, 2, 0)
