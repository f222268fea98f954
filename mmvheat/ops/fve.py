"""Frequency value embeddings (FVEs): their grid and their resizing.

One place for both, used by the backbone (at forward time) and by the
checkpoint reader (at load time).
"""
from typing import Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch.fx.experimental.symbolic_shapes import statically_known_true

__all__ = ['fve_grid_for', 'resize_freq_embed']


def fve_grid_for(img_size: Union[int, Sequence[int]],
                 stage: int) -> Tuple[int, int]:
    """The FVE grid of ``stage`` for a model built with ``img_size``:
    ``img_size / 4 / 2^stage`` rounded down per side, as the authors'
    ``int(res0 // 2^i)`` (224 -> 56, 28, 14, 7; 512 -> 128, 64, 32, 16)."""
    if isinstance(img_size, int):
        img_size = (img_size, img_size)
    return tuple(int(s / 4 // 2**stage) for s in img_size)


def _known_equal(a, b) -> bool:
    """``a == b`` for sizes, True only when known without a guard: ints
    compare, symbolic ints only if provably equal, and sizes traced as
    tensors (``torch.jit.trace``) never."""
    same = a == b
    return isinstance(same, (bool, torch.SymBool)) and statically_known_true(
        same)


def resize_freq_embed(freq_embed: torch.Tensor,
                      size: Tuple[int, int]) -> torch.Tensor:
    """Resize a frequency value embedding (H, W, C) to ``size`` = (h, w).

    Bicubic interpolation with ``align_corners=False``, as the authors do
    when a feature map and its stage's FVE differ in size. At the same size
    the FVE itself is returned, as the authors do, when that is known
    without a guard (``statically_known_true`` from
    ``torch.fx.experimental.symbolic_shapes``: always in eager mode; with
    symbolic sizes, as in a dynamic-shape export, only if the tracer can
    prove it, and never for sizes ``torch.jit.trace`` records as tensors,
    so such traced graphs keep the resize and serve every size).
    Either way the values are the same: at the same size every sample falls
    on a grid point, where the cubic weights are exactly (0, 1, 0, 0), so
    the resize equals its input bit for bit. Sides of length 1 (in or out)
    work.

    Args:
        freq_embed (torch.Tensor): The FVE, shape (H, W, C).
        size (tuple[int, int]): The target (h, w), ints or symbolic ints.

    Returns:
        torch.Tensor: The FVE on the (h, w) grid, shape (h, w, C).
    """
    if freq_embed.dim() != 3:
        raise ValueError('a frequency value embedding must have shape '
                         f'(H, W, C), got {tuple(freq_embed.shape)}')
    if _known_equal(size[0], freq_embed.shape[0]) and _known_equal(
            size[1], freq_embed.shape[1]):
        return freq_embed
    grid = freq_embed.permute(2, 0, 1).unsqueeze(0)
    grid = F.interpolate(grid, size=tuple(size), mode='bicubic',
                         align_corners=False)
    return grid[0].permute(1, 2, 0)
