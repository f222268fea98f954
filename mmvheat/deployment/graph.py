"""The vHeat backbone in an exportable form.

:class:`ExportableVHeat` runs the modules of a :class:`~mmvheat.models.VHeat`
(stem, blocks, downsamples, output norms; every layer by calling its module)
but builds the tables the blocks need in one of two ways:

* ``fixed_size=None`` (dynamic): the DCT bases, the bicubic resize of each
  FVE to the stage's map and the decay ``exp(-(w_n^2 + w_m^2)) ** k`` are
  computed *in the graph* from the map's symbolic size, with ops that keep
  the size symbolic (``arange`` instead of ``linspace``, the ``sqrt(2/N)``
  scale as a tensor), so one exported file serves any input size;
* ``fixed_size=(H, W)``: the bases and every block's decay are computed once
  here by the backbone's own functions and held as buffers, so they are
  baked into the exported file as constants (the deployed model; that file
  takes only that size).

The core model is not changed: its Python-side shortcuts (sharing one basis
when H == W, skipping the resize when a map has its FVE's size, reusing kept
tables) would fix the exported sizes, so this module leaves them out.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvheat.ops import dct_bases, resize_freq_embed

__all__ = ['ExportableVHeat', 'MIN_INPUT_SIZE', 'graph_dct_basis',
           'graph_decay_base']

# The smallest input side: stage 3 (stride 32) then has at least one cell.
MIN_INPUT_SIZE = 32


def _count(index: torch.Tensor) -> torch.Tensor:
    """N as a float64 0-d tensor from ``arange(N)`` (exact; keeps N
    symbolic)."""
    return index[-1].to(torch.float64) + 1


def graph_dct_basis(index: torch.Tensor) -> torch.Tensor:
    """The orthonormal DCT-II basis of size N from ``index = arange(N)``
    (float32), computed as :func:`mmvheat.ops.dct_matrix` does: the same
    positions and frequencies (``arange`` gives the integers ``linspace``
    gives), ``cos(freq * pos * pi) * sqrt(2 / N)``, row 0 further divided by
    sqrt(2). The scale is rounded from float64 as ``math.sqrt`` is.

    Args:
        index (torch.Tensor): ``arange(N)`` in float32.

    Returns:
        torch.Tensor: (N, N), frequencies along dim 0.
    """
    n = _count(index)
    pos = (index.view(1, -1) + 0.5) / n.to(index.dtype)
    basis = torch.cos(index.view(-1, 1) * pos * torch.pi)
    basis = basis * torch.sqrt(2.0 / n).to(index.dtype)
    row_div = torch.where(index == 0, math.sqrt(2), 1.0).to(index.dtype)
    return basis / row_div.view(-1, 1)


def graph_decay_base(index_h: torch.Tensor,
                     index_w: torch.Tensor) -> torch.Tensor:
    """``exp(-(w_n^2 + w_m^2))`` with ``w_n = n * pi / H`` (as
    :func:`mmvheat.ops.decay_map`, whose ``linspace`` may differ in the last
    bit) from ``arange(H)`` and ``arange(W)`` (float32)."""
    pi = torch.tensor(torch.pi, dtype=index_h.dtype)
    w_n = index_h * (pi / _count(index_h).to(index_h.dtype))
    w_m = index_w * (pi / _count(index_w).to(index_w.dtype))
    return torch.exp(-(w_n.view(-1, 1)**2 + w_m.view(1, -1)**2))


class ExportableVHeat(nn.Module):
    """A VHeat backbone whose tables are exportable (see the module
    docstring). Outputs equal the backbone's (eval mode, float rounding).

    Args:
        backbone (VHeat): The model; its modules are shared, not copied.
            It is switched to ``hco_impl='matmul'`` with ``fixed_size``
            (the products, split where the fixed rule says so for the
            baked sizes) and to ``'dense'`` without (the split depends on
            the map's lengths, which a dynamic graph does not know); every
            implementation gives the same outputs.
        fixed_size (tuple[int, int], optional): Bake the tables for this
            input size. Defaults to None (tables in the graph, any size).
    """

    def __init__(self, backbone: nn.Module,
                 fixed_size: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        # same weights, same outputs
        backbone.set_hco_impl('dense' if fixed_size is None else 'matmul')
        self.backbone = backbone
        self.fixed_size = None if fixed_size is None else tuple(
            int(s) for s in fixed_size)
        if self.fixed_size is not None:
            self._bake_tables(self.fixed_size)

    def stage_sizes(self, size: Sequence[int]) -> List[Tuple[int, int]]:
        """The (H, W) map of every stage for an input of ``size``."""
        return [tuple(self.backbone.feature_size(s, i) for s in size)
                for i in range(self.backbone.num_stages)]

    @torch.no_grad()
    def _bake_tables(self, size: Tuple[int, int]) -> None:
        """Bases and per-block decays for ``size``, by the backbone's own
        functions, as buffers (exported as constants)."""
        vheat = self.backbone
        for i, (h, w) in enumerate(self.stage_sizes(size)):
            basis_h, basis_w = dct_bases(h, w)
            self.register_buffer(f'basis_h{i}', basis_h.clone(), False)
            self.register_buffer(f'basis_w{i}', basis_w.clone(), False)
            fve = resize_freq_embed(vheat.freq_embed[i].float(), (h, w))
            for j, block in enumerate(vheat.stage_blocks(i)):
                self.register_buffer(f'decay{i}_{j}',
                                     block.op.decay(fve).float(), False)

    def _tables(self, stage: int, x: torch.Tensor):
        """(bases, per-block decays) for channels-last map ``x``."""
        vheat = self.backbone
        blocks = vheat.stage_blocks(stage)
        if self.fixed_size is not None:
            bases = (getattr(self, f'basis_h{stage}'),
                     getattr(self, f'basis_w{stage}'))
            return bases, [getattr(self, f'decay{stage}_{j}')
                           for j in range(len(blocks))]
        h, w = x.shape[1], x.shape[2]
        index_h = torch.arange(h, device=x.device).float()
        index_w = torch.arange(w, device=x.device).float()
        bases = (graph_dct_basis(index_h), graph_dct_basis(index_w))
        fve = vheat.freq_embed[stage]
        grid = F.interpolate(fve.permute(2, 0, 1).unsqueeze(0), size=(h, w),
                             mode='bicubic', align_corners=False)
        fve = grid[0].permute(1, 2, 0)
        base = graph_decay_base(index_h, index_w)[:, :, None]
        return bases, [torch.pow(base, block.op.conductivity(fve))
                       for block in blocks]

    def _run_stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        bases, decays = self._tables(stage, x)
        for block, decay in zip(self.backbone.stage_blocks(stage), decays):
            x = block(x, None, decay, bases)
        return x

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C, H, W) images to the backbone's tuple of feature maps."""
        vheat = self.backbone
        return vheat.run_stages(vheat.patch_embed(x), self._run_stage)

def _pool_matrix(index_out: torch.Tensor, n_in: torch.Tensor,
                 index_in: torch.Tensor) -> torch.Tensor:
    """(out, in) averaging matrix of adaptive average pooling: row i
    averages input cells ``floor(i * in / out) .. ceil((i + 1) * in / out)
    - 1``, as ``F.adaptive_avg_pool2d`` does."""
    n_out = index_out.numel()
    start = torch.div(index_out * n_in, n_out, rounding_mode='floor')
    end = torch.div((index_out + 1) * n_in + n_out - 1, n_out,
                    rounding_mode='floor')
    inside = (index_in.view(1, -1) >= start.view(-1, 1)) & (
        index_in.view(1, -1) < end.view(-1, 1))
    return inside.float() / (end - start).view(-1, 1).float()


class MatmulAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two matrix products built from the input
    size in the graph (``P_H @ x @ P_W^T``). Equal to it to float rounding;
    exported, it takes any input size, where the exporter's decomposition
    of adaptive pooling over a dynamic size does not run in ONNX Runtime
    (mmseg's PPM pools to 1, 2, 3 and 6 cells).

    Args:
        output_size (int | tuple[int, int]): As for
            ``nn.AdaptiveAvgPool2d`` (no None entries).
    """

    def __init__(self, output_size) -> None:
        super().__init__()
        size = (output_size, output_size) if isinstance(
            output_size, int) else tuple(output_size)
        if len(size) != 2 or None in size:
            raise ValueError('MatmulAdaptiveAvgPool2d needs an int or (h, w) '
                             f'output size, got {output_size!r}')
        self.output_size = tuple(int(s) for s in size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        index_h = torch.arange(h, device=x.device)
        index_w = torch.arange(w, device=x.device)
        pool_h = _pool_matrix(torch.arange(self.output_size[0],
                                           device=x.device), index_h[-1] + 1,
                              index_h).to(x.dtype)
        pool_w = _pool_matrix(torch.arange(self.output_size[1],
                                           device=x.device), index_w[-1] + 1,
                              index_w).to(x.dtype)
        return torch.matmul(torch.matmul(pool_h, x), pool_w.t())


def exportable_pooling(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.AdaptiveAvgPool2d`` to more than one cell
    replaced by :class:`MatmulAdaptiveAvgPool2d` (in place; global pooling
    exports as it is)."""
    for name, child in module.named_children():
        if isinstance(child, nn.AdaptiveAvgPool2d):
            size = child.output_size
            if size not in (1, (1, 1)):
                setattr(module, name, MatmulAdaptiveAvgPool2d(size))
        else:
            exportable_pooling(child)
    return module
