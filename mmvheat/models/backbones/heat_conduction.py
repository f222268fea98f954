"""The Heat Conduction Operator (HCO) and the vHeat block.

Both work on channels-last tensors (B, H, W, C): LayerNorms and linear layers
act on the last dim without permute copies; the depthwise conv gets a
(B, C, H, W) view of that memory. Every layer runs by calling its module, so
hooks fire and swapped modules (quantized, LoRA-wrapped, parametrized) are
used. The parameter names follow the authors' checkpoints except where
their layout needed special machinery (see :mod:`mmvheat.checkpoint`): the
MLP's ``fc1``/``fc2`` are ``nn.Linear`` here (their files store 1x1 convs;
the weights are reshaped on load).

One block's forward, in this file::

    x ──norm1──> HCO ──(gamma1, drop path)──> + ──norm2──> MLP ──> + ──> out
    └──────────────────────────────────────────┘└─────────────────────┘

    HCO(x): dwconv 3x3 -> linear -> (u, z)
            u -> DCT -> * decay**ReLU(to_k(FVE)) -> IDCT -> out_norm
            out_norm(u) * SiLU(z) -> out_linear

(``post_norm=True`` puts norm1/norm2 after the HCO/MLP instead.)
"""
from collections import OrderedDict
from functools import partial
from typing import Callable, Optional, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from mmvheat.ops import DEFAULT_IMPL, heat_decay, heat_filter

# Leaves for torch.fx symbolic tracing (they read shapes): calls, not code.
torch.fx.wrap('heat_decay')
torch.fx.wrap('heat_filter')

Bases = Optional[Tuple[torch.Tensor, torch.Tensor]]

# The outputs selective recomputation keeps: matrix products and
# convolutions. Everything else in a branch (norms, activations, the gate,
# the damping, copies) is recomputed in backward from them.
_KEPT_OPS = frozenset(
    op for op in (getattr(torch.ops.aten, name, None)
                  for name in ('mm', 'addmm', 'bmm', 'baddbmm',
                               'convolution', '_convolution'))
    if op is not None)


def _keep_products(ctx, op, *args, **kwargs) -> cp.CheckpointPolicy:
    """Selective-checkpoint policy: keep products, recompute the rest."""
    if getattr(op, 'overloadpacket', op) in _KEPT_OPS:
        return cp.CheckpointPolicy.MUST_SAVE
    return cp.CheckpointPolicy.PREFER_RECOMPUTE


def _uncached_autocast(fn: Callable) -> Callable:
    """``fn`` under the autocast state it is called in, with the weight-cast
    cache off (``cache_enabled=False``).

    Autocast caches the low-precision copy of a parameter for as long as
    its outermost context lasts. Selective checkpointing requires the
    recomputation in backward to dispatch exactly the ops of the forward,
    but PyTorch's mixed-precision recipe runs backward *outside* the
    context: a cast the forward found in the cache (a stage's FVE, shared
    by its blocks; any weight of a model run twice in one context) is
    dispatched again in the recomputation and the op counts differ. With
    the cache off inside the region, every cast is dispatched in both. Each
    weight is cast once per region either way, so nothing is cast more
    often than with the cache.
    """

    def run(*args):
        device = next((a.device.type for a in args
                       if isinstance(a, torch.Tensor)), 'cpu')
        if not torch.is_autocast_enabled(device):
            return fn(*args)
        with torch.autocast(device, dtype=torch.get_autocast_dtype(device),
                            cache_enabled=False):
            return fn(*args)

    return run


def run_selective(fn: Callable, *args) -> torch.Tensor:
    """``fn(*args)`` under selective activation checkpointing
    (:func:`torch.utils.checkpoint.checkpoint` with
    :func:`~torch.utils.checkpoint.create_selective_checkpoint_contexts`):
    the outputs of matrix products and convolutions are kept for backward,
    elementwise results are recomputed there. Values and gradients are
    those of plain autograd, also under autocast with backward outside it
    (see :func:`_uncached_autocast`)."""
    return cp.checkpoint(
        _uncached_autocast(fn), *args, use_reentrant=False,
        context_fn=partial(cp.create_selective_checkpoint_contexts,
                           _keep_products))


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's residual branch with probability
    ``drop_prob`` in training, scaling kept ones by ``1 / (1 - drop_prob)``.

    Args:
        drop_prob (float): Probability of dropping a sample's branch.
            Defaults to 0.
    """

    def __init__(self, drop_prob: float = 0.) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1))
        mask = mask.bernoulli_(keep)
        return x * mask / keep if keep > 0 else x * mask

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class HeatConductionOperator(nn.Module):
    """The Heat Conduction Operator (``Heat2D`` in the authors' code).

    ``dwconv -> linear -> (u, z)``; ``u`` goes through the 2-D DCT, is damped
    per frequency and channel by ``exp(-(w_n^2 + w_m^2)) ** ReLU(to_k(FVE))``
    and comes back through the IDCT; then ``out_norm(u) * SiLU(z)`` and
    ``out_linear``.

    State: its parameters, and after :meth:`VHeat.switch_to_deploy` the
    buffer ``decay_table`` (the damping factors of one map size, derived
    from the FVE and ``to_k``; None before). The table is read only in
    eval mode and only for a map of its size (:meth:`table_fits`); the
    contract that keeps it equal to the weights is
    :meth:`VHeat.switch_to_deploy`'s. How the filter is computed is an
    argument of :meth:`forward` (the model's ``hco_impl``), not state.

    Args:
        dim (int): Number of channels C.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.linear = nn.Linear(dim, 2 * dim)
        self.out_norm = nn.LayerNorm(dim, eps=1e-5)
        self.out_linear = nn.Linear(dim, dim)
        self.to_k = nn.Sequential(OrderedDict(
            [('0', nn.Linear(dim, dim)), ('1', nn.ReLU())]))
        self.register_buffer('decay_table', None, persistent=False)

    def decay(self, freq_embed: torch.Tensor) -> torch.Tensor:
        """Damping factors (H, W, C) for an FVE on the (H, W) grid:
        ``decay_map ** ReLU(to_k(FVE))``."""
        return heat_decay(self.to_k(freq_embed))

    def table_fits(self, x: torch.Tensor) -> bool:
        """Whether :meth:`forward` reads the deploy table for ``x``
        (channels-last (B, H, W, C)): in eval mode, when the table was
        built for ``x``'s map. In training mode the factors always come
        from the parameters."""
        table = self.decay_table
        return (not self.training and table is not None
                and table.shape[:2] == x.shape[1:3])

    def forward(self, x: torch.Tensor,
                freq_embed: Optional[torch.Tensor] = None,
                bases: Bases = None,
                impl: str = DEFAULT_IMPL) -> torch.Tensor:
        """Apply the operator.

        Args:
            x (torch.Tensor): Channels-last input (B, H, W, C).
            freq_embed (torch.Tensor, optional): The FVE on the (H, W) grid,
                shape (H, W, C). Not needed (None) when the deploy table
                fits the map (:meth:`table_fits`).
            bases (tuple[torch.Tensor, torch.Tensor], optional): The DCT
                bases of the (H, W) map, shared by a stage's blocks.
                Defaults to None (built here).
            impl (str): How the DCT-damp-IDCT filter is computed, one of
                :data:`mmvheat.ops.HCO_IMPLS` (see
                :mod:`mmvheat.ops.filters`); inside :class:`VHeat` its
                ``hco_impl``. Defaults to 'split'.

        Returns:
            torch.Tensor: Channels-last output (B, H, W, C).
        """
        table = self.decay_table
        if self.table_fits(x):
            factors = table
        elif freq_embed is None:
            raise ValueError(
                'HeatConductionOperator needs the FVE of the '
                f'{tuple(x.shape[1:3])} map: its decay table is '
                + ('missing' if table is None else
                   'not read in training mode' if self.training else
                   f'for {tuple(table.shape[:2])}'))
        else:
            factors = self.decay(freq_embed)
        x = self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        u, z = self.linear(x).chunk(2, dim=-1)
        u = heat_filter(u, factors, impl, bases)
        # == out_norm(u) * silu(z); the product is written into silu's
        # fresh result (one map fewer to allocate; autograd handles it)
        return self.out_linear(F.silu(z).mul_(self.out_norm(u)))


class Mlp(nn.Module):
    """The block's MLP on channels-last tensors: ``fc1``, GELU, ``fc2``.

    Args:
        dim (int): Input and output channels.
        hidden_dim (int): Hidden channels.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


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
        selective_cp (bool): In training mode, run each branch under
            selective activation checkpointing (:func:`run_selective`):
            less activation memory for a slower step (a memory saver, as
            ``VHeat(selective_cp=True)``). Defaults to False.
    """

    def __init__(self,
                 dim: int,
                 drop_path: float = 0.,
                 post_norm: bool = False,
                 layer_scale: Optional[float] = None,
                 mlp_ratio: float = 4.,
                 selective_cp: bool = False) -> None:
        super().__init__()
        self.post_norm = post_norm
        self.selective_cp = selective_cp
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.op = HeatConductionOperator(dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if layer_scale is not None:
            self.gamma1 = nn.Parameter(torch.full((dim, ), float(layer_scale)))
            self.gamma2 = nn.Parameter(torch.full((dim, ), float(layer_scale)))
        else:
            self.gamma1 = self.gamma2 = None

    def heat_branch(self, x: torch.Tensor,
                    freq_embed: Optional[torch.Tensor],
                    bases: Bases = None,
                    impl: str = DEFAULT_IMPL) -> torch.Tensor:
        """The HCO with its norm, before layer scale and drop path."""
        if self.post_norm:
            return self.norm1(self.op(x, freq_embed, bases, impl))
        return self.op(self.norm1(x), freq_embed, bases, impl)

    def mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP with its norm, before layer scale and drop path."""
        if self.post_norm:
            return self.norm2(self.mlp(x))
        return self.mlp(self.norm2(x))

    def forward(self, x: torch.Tensor, freq_embed: Optional[torch.Tensor],
                bases: Bases = None,
                impl: str = DEFAULT_IMPL) -> torch.Tensor:
        """Channels-last (B, H, W, C) in and out; see
        :meth:`HeatConductionOperator.forward` for ``freq_embed``,
        ``bases`` and ``impl`` (inside :class:`VHeat`, its ``hco_impl``)."""
        if self.selective_cp and self.training:
            heat = run_selective(self.heat_branch, x, freq_embed, bases,
                                 impl)
        else:
            heat = self.heat_branch(x, freq_embed, bases, impl)
        if self.gamma1 is not None:
            heat = self.gamma1 * heat
        x = x + self.drop_path(heat)
        if self.selective_cp and self.training:
            mlp = run_selective(self.mlp_branch, x)
        else:
            mlp = self.mlp_branch(x)
        if self.gamma2 is not None:
            mlp = self.gamma2 * mlp
        return x + self.drop_path(mlp)
