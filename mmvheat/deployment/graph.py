"""Exportable forms of what a vHeat model runs.

The backbone itself exports: its ops build the DCT bases, decay maps and FVE
resizes from the map's (symbolic) size with no Python-side shortcuts, so one
file serves any input size. :func:`exportable_backbone` only decides whether
the decay tables are baked in (a fixed input size) or computed in the graph
(dynamic sizes); :func:`image_dims` names the dynamic dims for
``torch.export``. :class:`MatmulAdaptiveAvgPool2d` stands in for adaptive
average pooling, whose exported form over a dynamic size ONNX Runtime cannot
run (mmseg's PPM).
"""
import copy
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ['EXPORT_MIN_SIZE', 'MIN_INPUT_SIZE', 'MatmulAdaptiveAvgPool2d',
           'exportable_backbone', 'exportable_pooling', 'image_dims']

# The smallest input side: stage 3 (stride 32) then has at least one cell.
MIN_INPUT_SIZE = 32
# The smallest side of a dynamic-shape torch.export (named dims): PyTorch's
# shape reasoning treats a size that may be 1 as a case of its own (any
# stride-32 convolution hits it), so every stage's map needs at least two
# cells per side: ceil(side / 32) >= 2. A 32-pixel side exports with a
# fixed size.
EXPORT_MIN_SIZE = MIN_INPUT_SIZE + 1


def image_dims(max_size: int = 4096,
               min_size: int = EXPORT_MIN_SIZE,
               max_batch: Optional[int] = None) -> Dict[int, object]:
    """Named dynamic dims H and W (and B) of an images argument
    (B, 3, H, W), for
    ``torch.export.export(..., dynamic_shapes=(image_dims(), ))``.

    Args:
        max_size (int): Largest side. Defaults to 4096.
        min_size (int): Smallest side, at least :data:`EXPORT_MIN_SIZE`
            (33). Defaults to 33.
        max_batch (int, optional): A dynamic batch ``Dim('B')`` from 1 to
            this. Defaults to None (the example's batch only).

    Returns:
        dict: ``{2: Dim('H', ...), 3: Dim('W', ...)}`` (and ``0: Dim('B',
        ...)``).
    """
    if min_size < EXPORT_MIN_SIZE:
        raise ValueError(
            f'a dynamic-shape torch.export of vHeat takes sides of at least '
            f'{EXPORT_MIN_SIZE}, got min_size={min_size}: at 32 the '
            'stride-32 map is one cell wide, a size PyTorch traces as a '
            'case of its own; export 32 with a fixed size')
    if max_size < min_size:
        raise ValueError(f'max_size ({max_size}) must be >= min_size '
                         f'({min_size})')
    dim = torch.export.Dim
    dims = {2: dim('H', min=min_size, max=max_size),
            3: dim('W', min=min_size, max=max_size)}
    if max_batch is not None:
        dims[0] = dim('B', min=1, max=max_batch)
    return dims


def exportable_backbone(backbone: nn.Module,
                        fixed_size: Optional[Sequence[int]] = None
                        ) -> nn.Module:
    """A copy of a :class:`~mmvheat.models.VHeat` to export.

    Args:
        backbone (VHeat): The model (not changed).
        fixed_size (tuple[int, int], optional): Export for this input size
            only: the copy is deployed for it
            (:meth:`~mmvheat.models.VHeat.switch_to_deploy`), so the decay
            tables are constants of the file. Defaults to None: the copy
            computes them in the graph, for any size; its ``hco_impl`` is
            the dense products ('matmul'; the 'split' filter's rule reads
            the map's lengths, which a dynamic graph does not know; same
            outputs).

    Returns:
        VHeat: The copy, in eval mode.
    """
    backbone = copy.deepcopy(backbone).eval()
    backbone.remove_decay_tables()
    if fixed_size is not None:
        backbone.switch_to_deploy(tuple(int(s) for s in fixed_size))
    elif backbone.hco_impl == 'split':
        backbone.hco_impl = 'matmul'
    return backbone


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
