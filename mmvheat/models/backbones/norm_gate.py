"""``layer_norm(u) * silu(z)``, the HCO's gate, keeping only ``u`` and ``z``
for the backward pass.

Plain autograd keeps four tensors of the block's width (``u``, its norm,
``z`` and ``silu(z)``); recomputing the two cheap elementwise results in the
backward pass keeps two.
"""
import torch
import torch.nn.functional as F

from mmvheat.ops import needs_autograd


class _NormGate(torch.autograd.Function):

    @staticmethod
    def forward(ctx, u, z, weight, bias, eps):
        shape = (u.shape[-1], )
        normed, mean, rstd = torch.ops.aten.native_layer_norm(
            u, shape, weight, bias, eps)
        ctx.save_for_backward(u, z, weight, bias, mean, rstd)
        ctx.eps = eps
        return normed * F.silu(z)

    @staticmethod
    def backward(ctx, grad):
        u, z, weight, bias, mean, rstd = ctx.saved_tensors
        shape = (u.shape[-1], )
        grad_u = grad_z = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            normed = torch.ops.aten.native_layer_norm(u, shape, weight, bias,
                                                      ctx.eps)[0]
            grad_z = torch.ops.aten.silu_backward(grad * normed, z)
        if any(ctx.needs_input_grad[i] for i in (0, 2, 3)):
            mask = [ctx.needs_input_grad[i] for i in (0, 2, 3)]
            grad_u, grad_w, grad_b = torch.ops.aten.native_layer_norm_backward(
                grad * F.silu(z), u, shape, mean, rstd, weight, bias, mask)
        return grad_u, grad_z, grad_w, grad_b, None


def norm_gate(u: torch.Tensor, z: torch.Tensor, norm: torch.nn.LayerNorm
              ) -> torch.Tensor:
    """``norm(u) * F.silu(z)`` over the last dim, saving only ``u`` and ``z``
    for backward when that matters (autograd on, no autocast). Without
    autograd ``z`` is overwritten (pass a temporary).

    Args:
        u (torch.Tensor): Input of the LayerNorm (..., C).
        z (torch.Tensor): Gate input, same shape.
        norm (nn.LayerNorm): The LayerNorm over C.

    Returns:
        torch.Tensor: (..., C).
    """
    if not needs_autograd(u, z):
        return norm(u).mul_(F.silu(z, inplace=True))  # z is overwritten
    if (not torch.is_autocast_enabled(u.device.type)
            and u.dtype == z.dtype == norm.weight.dtype):
        return _NormGate.apply(u, z, norm.weight, norm.bias, norm.eps)
    return norm(u) * F.silu(z)
