"""The Heat Conduction Operator (HCO) and the vHeat block.

Both work on channels-last tensors (B, H, W, C): LayerNorms and linear layers
act on the last dim without permute copies, and the convs get (B, C, H, W)
views of that memory. Every layer runs by calling its module. Parameter names
and shapes follow the authors' released checkpoints (``op.dwconv``,
``op.linear``, ``op.to_k.0``, ``mlp.fc1`` as a (out, in, 1, 1) conv weight,
...).
"""
from collections import OrderedDict
from typing import Optional, Tuple

import torch
import torch.nn as nn

from mmvheat.ops import DEFAULT_IMPL, heat_decay, heat_filter, needs_autograd

from . import reference_layout
from .pointwise import PointwiseConv2d
from .recompute import act_then, norm_gate


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample, scaled by the keep probability."""
    if drop_prob == 0. or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0], ) + (1, ) * (x.dim() - 1)
    mask = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0:
        mask.div_(keep_prob)
    return x * mask


class DropPath(nn.Module):
    """Stochastic depth (drop whole residual branches per sample).

    Args:
        drop_prob (float): Probability of dropping a sample's branch.
            Defaults to 0.
    """

    def __init__(self, drop_prob: float = 0.) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class HeatConductionOperator(nn.Module):
    """The Heat Conduction Operator (``Heat2D`` in the authors' code).

    ``dwconv -> linear -> (u, z)``; ``u`` goes through the 2-D DCT, is damped
    per frequency and channel by ``exp(-(w_n^2 + w_m^2)) ** ReLU(to_k(FVE))``
    and comes back through the IDCT; then ``out_norm(u) * SiLU(z)`` and
    ``out_linear``. Every layer runs by calling its module, so hooks fire and
    swapped modules (quantized, LoRA-wrapped, parametrized) are used.

    The damping factors of the FVE's own grid can be kept in the
    non-persistent buffer ``decay_table`` (filled by the backbone, see
    :meth:`VHeat.refresh_decay_tables`); it is empty until then.

    Args:
        dim (int): Number of channels C.
        impl (str): How the DCT-damp-IDCT filter is computed: 'matmul'
            (the default: products, split where they pay), 'dense', 'fft',
            'reference' (the authors' ``conv1d`` form) or 'auto' (see
            :func:`mmvheat.ops.heat_filter`).
            Defaults to 'matmul'.
    """

    def __init__(self, dim: int, impl: str = DEFAULT_IMPL) -> None:
        super().__init__()
        self.dim = dim
        self.impl = impl
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.linear = nn.Linear(dim, 2 * dim)
        self.out_norm = nn.LayerNorm(dim, eps=1e-5)
        self.out_linear = nn.Linear(dim, dim)
        self.to_k = nn.Sequential(OrderedDict(
            [('0', nn.Linear(dim, dim)), ('1', nn.ReLU())]))
        self.register_buffer('decay_table', torch.empty(0), persistent=False)

    def conductivity(self, freq_embed: torch.Tensor) -> torch.Tensor:
        """``k = ReLU(to_k(FVE))``: the learned exponent per frequency."""
        return self.to_k(freq_embed)

    def decay(self, freq_embed: torch.Tensor) -> torch.Tensor:
        """Damping factors (H, W, C) for an FVE already on the (H, W) grid."""
        return heat_decay(self.conductivity(freq_embed))

    def forward(self,
                x: torch.Tensor,
                freq_embed: Optional[torch.Tensor] = None,
                decay: Optional[torch.Tensor] = None,
                bases: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                ) -> torch.Tensor:
        """Apply the operator.

        Args:
            x (torch.Tensor): Channels-last input (B, H, W, C).
            freq_embed (torch.Tensor, optional): The FVE on the (H, W) grid,
                shape (H, W, C). Needed unless ``decay`` is given.
            decay (torch.Tensor, optional): Precomputed damping factors
                (H, W, C), e.g. ``decay_table``. Defaults to None.
            bases (tuple[torch.Tensor, torch.Tensor], optional): The DCT
                bases of the (H, W) map, shared by a stage's blocks.
                Defaults to None (built here).

        Returns:
            torch.Tensor: Channels-last output (B, H, W, C).
        """
        x = self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        u, z = self.linear(x).chunk(2, dim=-1)
        if decay is None:
            if freq_embed is None:
                raise ValueError('HeatConductionOperator needs either '
                                 '`freq_embed` or `decay`')
            decay = self.decay(freq_embed)
        u = heat_filter(u, decay, impl=self.impl, bases=bases)
        u = norm_gate(self.out_norm, u, z)  # == out_norm(u) * silu(z)
        return self.out_linear(u)


def _to_nchw(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) view of channels-last (B, H, W, C) memory."""
    return x.permute(0, 3, 1, 2)


class ConvMlp(nn.Module):
    """The block's MLP: 1x1 conv, GELU, 1x1 conv (keys ``fc1``/``fc2`` as
    in the released checkpoints), on channels-last data: the convs
    (:class:`PointwiseConv2d`, GEMMs over channels) get a (B, C, H, W) view
    of (B, H, W, C) memory (PyTorch's channels-last format), so no copies
    are made.

    Args:
        dim (int): Input and output channels.
        hidden_dim (int): Hidden channels.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = PointwiseConv2d(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = PointwiseConv2d(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last (B, H, W, C) in and out."""
        h = self.fc1(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        # == fc2(act(h)), the GELU on contiguous (B, H, W, 4C) memory; in
        # training fc2 keeps h, not act(h)
        return act_then(self.fc2, self.act, h, _to_nchw).permute(0, 2, 3, 1)


class HeatBlock(nn.Module):
    """One vHeat block: HCO branch and MLP branch, each residual.

    * ``post_norm=False``: ``x + dp(g1 * op(norm1(x)))``, then
      ``x + dp(g2 * mlp(norm2(x)))``.
    * ``post_norm=True``: ``x + dp(g1 * norm1(op(x)))``, then
      ``x + dp(g2 * norm2(mlp(x)))``.

    Args:
        dim (int): Number of channels.
        drop_path (float): Stochastic depth rate of this block.
            Defaults to 0.
        post_norm (bool): Normalise after (True) or before (False) each
            branch. Defaults to False.
        layer_scale (float, optional): Initial value of the per-channel
            scales ``gamma1``/``gamma2``; None for no layer scale.
            Defaults to None.
        mlp_ratio (float): Hidden width of the MLP over ``dim``.
            Defaults to 4.
        reference_layout (bool): Run on (B, C, H, W) the way the authors'
            code does (see :mod:`.reference_layout`) instead of on
            channels-last tensors. Defaults to False.
    """

    def __init__(self,
                 dim: int,
                 drop_path: float = 0.,
                 post_norm: bool = False,
                 layer_scale: Optional[float] = None,
                 mlp_ratio: float = 4.,
                 reference_layout: bool = False) -> None:
        super().__init__()
        self.post_norm = post_norm
        self.reference_layout = reference_layout
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.op = HeatConductionOperator(dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        if layer_scale is not None:
            self.gamma1 = nn.Parameter(torch.full((dim, ), float(layer_scale)))
            self.gamma2 = nn.Parameter(torch.full((dim, ), float(layer_scale)))
        else:
            self.gamma1 = self.gamma2 = None

    def _scale(self, x: torch.Tensor, gamma: Optional[torch.Tensor]):
        return x if gamma is None else gamma * x

    def forward(self,
                x: torch.Tensor,
                freq_embed: Optional[torch.Tensor] = None,
                decay: Optional[torch.Tensor] = None,
                bases: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                ) -> torch.Tensor:
        """Channels-last (B, H, W, C) in and out; see
        :meth:`HeatConductionOperator.forward` for ``freq_embed``, ``decay``
        and ``bases``. (B, C, H, W) in and out with ``reference_layout``."""
        if self.reference_layout:
            return reference_layout.block_forward(self, x, freq_embed, decay)
        if self.post_norm:
            heat = self.norm1(self.op(x, freq_embed, decay, bases))
        else:
            heat = self.op(self.norm1(x), freq_embed, decay, bases)
        x = x + self.drop_path(self._scale(heat, self.gamma1))
        if self.post_norm:
            mlp = self.norm2(self.mlp(x))
        else:
            mlp = self.mlp(self.norm2(x))
        mlp = self.drop_path(self._scale(mlp, self.gamma2))
        if not needs_autograd(x, mlp):  # x is this block's own tensor
            return x.add_(mlp)
        return x + mlp
