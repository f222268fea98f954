"""vHeat's forward pass in the authors' tensor layout (``hco_impl='reference'``).

The same modules and weights as the fast path, run the way the released
code runs them, so that benchmarks compare against what users run today:
blocks work on (B, C, H, W); every LayerNorm over channels permutes to
channels-last and back with ``.contiguous()`` copies; the MLP is two 1x1
``Conv2d``; the HCO makes a channels-last copy for its linear layer, does
each 1-D DCT as an ``F.conv1d`` (see :func:`mmvheat.ops.reference_filter`)
and permutes its output back to (B, C, H, W).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvheat.ops import heat_filter


def layer_norm_2d(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the channels of (B, C, H, W), with the authors'
    permute-and-copy on both sides."""
    x = norm(x.permute(0, 2, 3, 1).contiguous())
    return x.permute(0, 3, 1, 2).contiguous()


def hco_forward(op: nn.Module, x: torch.Tensor,
                freq_embed: Optional[torch.Tensor],
                decay: Optional[torch.Tensor]) -> torch.Tensor:
    """:class:`HeatConductionOperator` on (B, C, H, W), authors' layout."""
    x = op.dwconv(x)
    u, z = op.linear(x.permute(0, 2, 3, 1).contiguous()).chunk(2, dim=-1)
    if decay is None:
        decay = op.decay(freq_embed)
    u = heat_filter(u, decay, impl='reference')
    u = op.out_norm(u) * F.silu(z)
    return op.out_linear(u).permute(0, 3, 1, 2).contiguous()


def block_forward(block: nn.Module, x: torch.Tensor,
                  freq_embed: Optional[torch.Tensor],
                  decay: Optional[torch.Tensor]) -> torch.Tensor:
    """:class:`HeatBlock` on (B, C, H, W), authors' layout."""

    def scale(y, gamma):
        return y if gamma is None else gamma[:, None, None] * y

    mlp = block.mlp
    if block.post_norm:
        heat = layer_norm_2d(block.norm1,
                             hco_forward(block.op, x, freq_embed, decay))
    else:
        heat = hco_forward(block.op, layer_norm_2d(block.norm1, x),
                           freq_embed, decay)
    x = x + block.drop_path(scale(heat, block.gamma1))
    if block.post_norm:
        y = layer_norm_2d(block.norm2, mlp.fc2(mlp.act(mlp.fc1(x))))
    else:
        y = mlp.fc2(mlp.act(mlp.fc1(layer_norm_2d(block.norm2, x))))
    return x + block.drop_path(scale(y, block.gamma2))


def stem_forward(stem: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The stride-4 stem, (B, C, H, W) in and out."""
    x = stem.act(layer_norm_2d(stem.norm1[1], stem.conv1(x)))
    return layer_norm_2d(stem.norm2[1], stem.conv2(x))


def downsample_forward(down: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Conv 3x3 s2 and LayerNorm, (B, C, H, W) in and out."""
    return layer_norm_2d(down[1], down[0](x))
