"""What one Heat Conduction Operator does, as numbers.

The HCO's heat-conduction step (DCT -> multiply by ``decay ** k`` -> IDCT)
is linear and does not depend on the input, so its response to a point
source is exact and tells everything about it. This module computes those
impulse responses and the learned conductivity ``k`` of chosen blocks; the
norm, the gate and the linear layers around the step are not part of it.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmvheat.ops import heat_decay, heat_filter, resize_freq_embed

__all__ = [
    'parse_block_ids', 'default_block_ids', 'grid_points', 'impulse_response',
    'heat_kernel', 'block_impulse_response', 'conductivity', 'reduce_channels',
    'spatial_spread'
]

BlockId = Tuple[int, int]


def parse_block_ids(specs: Sequence[str],
                    depths: Sequence[int]) -> List[BlockId]:
    """Turn ``'stage.block'`` strings into checked (stage, block) pairs.

    Args:
        specs (Sequence[str]): E.g. ``['0.0', '2.5', '3.1']``.
        depths (Sequence[int]): Blocks per stage of the model.

    Returns:
        list[tuple[int, int]]: The pairs, in the given order, without
        repeats.

    Raises:
        ValueError: For a malformed spec or an index out of range; the
            message names the valid range.
    """
    depths = list(depths)
    ranges = ', '.join(f'stage {i}: blocks 0..{d - 1}'
                       for i, d in enumerate(depths))
    out: List[BlockId] = []
    for spec in specs:
        parts = str(spec).split('.')
        try:
            stage, block = (int(p) for p in parts)
        except ValueError:
            raise ValueError(
                f'block {spec!r} must be STAGE.BLOCK with two '
                f'non-negative integers, e.g. 2.5 ({ranges})') from None
        if not 0 <= stage < len(depths):
            raise ValueError(f'block {spec}: stage {stage} is out of range; '
                             f'valid stages are 0..{len(depths) - 1} '
                             f'({ranges})')
        if not 0 <= block < depths[stage]:
            raise ValueError(f'block {spec}: stage {stage} has blocks '
                             f'0..{depths[stage] - 1}, got block {block} '
                             f'(depths {depths}; {ranges})')
        if (stage, block) not in out:
            out.append((stage, block))
    return out


def default_block_ids(depths: Sequence[int]) -> List[BlockId]:
    """The last block of every stage.

    Args:
        depths (Sequence[int]): Blocks per stage.

    Returns:
        list[tuple[int, int]]: One (stage, block) per stage.
    """
    return [(i, d - 1) for i, d in enumerate(depths)]


def grid_points(rel_points: Sequence[Tuple[float, float]],
                size: Tuple[int, int]) -> List[Tuple[int, int]]:
    """Map relative (y, x) positions in [0, 1] to cells of an (H, W) grid.

    Args:
        rel_points (Sequence[tuple[float, float]]): 0 is the first row or
            column, 1 the last.
        size (tuple[int, int]): The grid (H, W).

    Returns:
        list[tuple[int, int]]: Integer (y, x) cells.
    """
    h, w = size
    out = []
    for ry, rx in rel_points:
        if not (0 <= ry <= 1 and 0 <= rx <= 1):
            raise ValueError(f'relative points must lie in [0, 1], got '
                             f'({ry}, {rx})')
        out.append((int(round(ry * (h - 1))), int(round(rx * (w - 1)))))
    return out


def impulse_response(factors: torch.Tensor,
                     points: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """Response of the heat filter ``IDCT(DCT(u) * factors)`` to unit point
    sources.

    Args:
        factors (torch.Tensor): Damping per frequency and channel (H, W, C).
        points (Sequence[tuple[int, int]]): Source cells (y, x); each source
            is 1 in every channel at its cell and 0 elsewhere.

    Returns:
        torch.Tensor: Responses (P, H, W, C), one per point.
    """
    if factors.dim() != 3:
        raise ValueError('factors must have shape (H, W, C), got '
                         f'{tuple(factors.shape)}')
    h, w, c = factors.shape
    source = factors.new_zeros(len(points), h, w, c)
    for p, (y, x) in enumerate(points):
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f'source point ({y}, {x}) lies outside the '
                             f'{h}x{w} grid')
        source[p, y, x, :] = 1
    return heat_filter(source, factors)


def heat_kernel(k: torch.Tensor, points: Sequence[Tuple[int,
                                                        int]]) -> torch.Tensor:
    """Impulse responses for a given conductivity ``k``.

    Args:
        k (torch.Tensor): Non-negative conductivity (H, W, C).
        points (Sequence[tuple[int, int]]): Source cells (y, x).

    Returns:
        torch.Tensor: Responses (P, H, W, C).
    """
    return impulse_response(heat_decay(k), points)


def _stage_fve(backbone: nn.Module, stage: int,
               size: Optional[Tuple[int, int]]) -> torch.Tensor:
    fve = backbone.freq_embed[stage]
    if size is None:
        return fve
    return resize_freq_embed(fve, size)


def conductivity(backbone: nn.Module,
                 stage: int,
                 block: int,
                 size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """The learned conductivity ``k = ReLU(to_k(FVE))`` of one block.

    Args:
        backbone (VHeat): The model.
        stage (int): Stage index.
        block (int): Block index within the stage.
        size (tuple[int, int], optional): Grid (H, W) to evaluate on (the FVE
            is resized as in the forward pass). Defaults to None (the FVE's
            own grid).

    Returns:
        torch.Tensor: ``k`` of shape (H, W, C), detached.
    """
    op = backbone.layers[stage][block].op
    with torch.no_grad():
        return op.to_k(_stage_fve(backbone, stage, size)).detach()


def block_impulse_response(
        backbone: nn.Module,
        stage: int,
        block: int,
        points: Sequence[Tuple[int, int]],
        size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Impulse responses of one block's heat-conduction filter.

    Args:
        backbone (VHeat): The model.
        stage (int): Stage index.
        block (int): Block index within the stage.
        points (Sequence[tuple[int, int]]): Source cells (y, x).
        size (tuple[int, int], optional): Grid (H, W); defaults to the FVE's
            own grid.

    Returns:
        torch.Tensor: Responses (P, H, W, C), detached.
    """
    op = backbone.layers[stage][block].op
    with torch.no_grad():
        factors = op.decay(_stage_fve(backbone, stage, size))
        return impulse_response(factors.float(), points).detach()


def reduce_channels(maps: torch.Tensor,
                    channels: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Average the last (channel) dim, over all or the selected channels.

    Args:
        maps (torch.Tensor): (..., C).
        channels (Sequence[int], optional): Channels to average; None for
            all. Defaults to None.

    Returns:
        torch.Tensor: (...) without the channel dim.
    """
    if channels is not None:
        c = maps.shape[-1]
        bad = [ch for ch in channels if not 0 <= ch < c]
        if bad:
            raise ValueError(f'channels {bad} out of range: this map has '
                             f'channels 0..{c - 1}')
        maps = maps[..., list(channels)]
    return maps.mean(dim=-1)


def spatial_spread(response: torch.Tensor, point: Tuple[int, int]) -> float:
    """Root-mean-square distance (in cells) of a response from its source.

    Args:
        response (torch.Tensor): One (H, W) response map.
        point (tuple[int, int]): The source cell (y, x).

    Returns:
        float: ``sqrt(sum(r * d^2) / sum(r))``, 0 for a point.
    """
    h, w = response.shape
    yy = torch.arange(h, dtype=response.dtype).view(-1, 1) - point[0]
    xx = torch.arange(w, dtype=response.dtype).view(1, -1) - point[1]
    r = response.detach().cpu()
    var = (r * (yy**2 + xx**2)).sum() / r.sum()
    return float(var.clamp_min(0).sqrt())
