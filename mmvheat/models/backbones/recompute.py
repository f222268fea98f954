"""Training memory: elementwise results recomputed in backward, not kept.

Plain autograd keeps, per vHeat block, both the MLP's GELU input and output
(each four times the block's width) and, in the HCO's gate
``out_norm(u) * silu(z)``, the norm's output and ``silu(z)`` besides ``u``
and ``z``. The functions here run exactly the same modules, but while the
next module saves its input, a :func:`torch.autograd.graph.saved_tensors_hooks`
pair stores a *recipe* (the cheap elementwise module and its input, which
autograd keeps anyway) instead of the result, and the backward pass
recomputes it under the autocast state of the forward pass. Values and
gradients are those of plain autograd.

Recognition is by identity (``saved is result``): a layer that saves
something else (a ``Linear`` over a >2-D input saves a reshaped view; a
wrapped or swapped module may save a copy) simply keeps it, so the saving is
best-effort and correctness never depends on it. In the vHeat block both
savings hold: the gate's product saves ``norm(u)`` and ``silu(z)``
themselves, and :class:`~.pointwise.PointwiseConv2d` (``fc2``) saves its
input as given. Side effects: forward hooks
of the recomputed modules (the GELU, ``out_norm``) fire again in backward, as
under activation checkpointing.

Without autograd, the elementwise steps run in place; under
``torch.compile`` the hooks are left out (dynamo does not trace them) and the
compiler's own partitioner recomputes such elementwise results.
"""
from contextlib import contextmanager
from typing import Callable, Iterator, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.graph import saved_tensors_hooks

from mmvheat.ops import needs_autograd


class _Recipe:
    """How to rebuild a saved tensor: ``fn(arg)`` under an autocast state."""

    __slots__ = ('fn', 'arg', 'device_type', 'autocast', 'autocast_dtype')

    def __init__(self, fn: Callable, arg: torch.Tensor) -> None:
        self.fn, self.arg = fn, arg
        self.device_type = arg.device.type
        self.autocast = torch.is_autocast_enabled(self.device_type)
        self.autocast_dtype = torch.get_autocast_dtype(self.device_type)

    def __call__(self) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.autocast_dtype,
                            enabled=self.autocast):
            return self.fn(self.arg)


@contextmanager
def recompute_saved(recipes: List[Tuple[torch.Tensor, Callable, torch.Tensor]]
                    ) -> Iterator[None]:
    """Within the block, a tensor autograd saves that *is* one of the
    ``result``s of ``recipes`` (``(result, fn, arg)`` with
    ``result == fn(arg)``) is stored as ``fn`` and ``arg`` and recomputed
    when backward needs it. The list is emptied on exit, so the hooks keep
    no reference to the results."""

    def pack(tensor: torch.Tensor):
        for result, fn, arg in recipes:
            if tensor is result:
                return _Recipe(fn, arg)
        return tensor

    def unpack(packed):
        return packed() if isinstance(packed, _Recipe) else packed

    try:
        with saved_tensors_hooks(pack, unpack):
            yield
    finally:
        recipes.clear()


def _saving(*tensors: torch.Tensor) -> bool:
    return needs_autograd(*tensors) and not torch.compiler.is_compiling()


def norm_gate(norm: nn.Module, u: torch.Tensor,
              z: torch.Tensor) -> torch.Tensor:
    """``norm(u) * F.silu(z)``, the HCO's gate.

    With autograd, the product keeps ``u`` and ``z`` (which the norm and the
    SiLU keep anyway) instead of ``norm(u)`` and ``silu(z)``. Without
    autograd ``z`` is overwritten (pass a temporary).

    Args:
        norm (nn.Module): The gate's norm (a LayerNorm over the last dim).
        u (torch.Tensor): Input of the norm (..., C).
        z (torch.Tensor): Gate input, same shape.

    Returns:
        torch.Tensor: (..., C).
    """
    if not needs_autograd(u, z):
        return norm(u).mul_(F.silu(z, inplace=True))
    normed = norm(u)
    gate = F.silu(z)
    if not _saving(u, z):
        return normed * gate
    with recompute_saved([(normed, norm, u), (gate, F.silu, z)]):
        return normed * gate


def act_then(layer: nn.Module, act: nn.Module, h: torch.Tensor,
             layout: Callable[[torch.Tensor], torch.Tensor] = None
             ) -> torch.Tensor:
    """``layer(layout(act(h)))`` (the MLP's GELU and ``fc2``).

    With autograd, ``layer`` keeps ``h`` (which the activation keeps anyway)
    instead of its input, four block widths fewer per MLP. Without autograd
    the activation runs in place on ``h`` (pass a temporary) when ``act`` is
    a plain :class:`torch.nn.GELU`.

    Args:
        layer (nn.Module): The layer after the activation.
        act (nn.Module): The elementwise activation.
        h (torch.Tensor): The activation's input.
        layout (callable, optional): A view taken of the activation's
            output before ``layer`` (e.g. channels-last to (B, C, H, W)), so
            that the activation runs on contiguous memory. Defaults to None.

    Returns:
        torch.Tensor: ``layer(layout(act(h)))``.
    """
    layout = layout or (lambda t: t)
    if not needs_autograd(h):
        if type(act) is nn.GELU and act.approximate == 'none':
            return layer(layout(torch.ops.aten.gelu_(h)))
        return layer(layout(act(h)))
    a = layout(act(h))
    if not _saving(h):
        return layer(a)
    with recompute_saved([(a, lambda t: layout(act(t)), h)]):
        return layer(a)
