"""``linear(gelu(h))`` that keeps only ``h`` for the backward pass.

Plain autograd saves both the GELU's input and its output (the second
linear layer's input), two tensors four times the block's width. Recomputing
the GELU in the backward pass (cheap next to the matrix products) saves one
of them: about a fifth of a vHeat block's activation memory in training.
"""
import torch
import torch.nn.functional as F

from mmvheat.ops import needs_autograd


class _GeluLinear(torch.autograd.Function):

    @staticmethod
    def forward(ctx, h, weight, bias):
        ctx.save_for_backward(h, weight)
        return F.linear(F.gelu(h), weight, bias)

    @staticmethod
    def backward(ctx, grad):
        h, weight = ctx.saved_tensors
        grad_h = grad_w = grad_b = None
        flat = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            act = F.gelu(h)
            grad_w = flat.t().mm(act.reshape(-1, act.shape[-1]))
        if ctx.needs_input_grad[2]:
            grad_b = flat.sum(0)
        if ctx.needs_input_grad[0]:
            grad_h = torch.ops.aten.gelu_backward(grad.matmul(weight), h)
        return grad_h, grad_w, grad_b


def gelu_linear(h: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor = None) -> torch.Tensor:
    """``F.linear(F.gelu(h), weight, bias)`` (exact GELU), saving only ``h``
    for backward when that matters (autograd on, fp32, no autocast).
    Without autograd the GELU runs in place: ``h`` is overwritten, so pass
    a temporary.

    Args:
        h (torch.Tensor): Pre-activation (..., in_features).
        weight (torch.Tensor): (out_features, in_features).
        bias (torch.Tensor, optional): (out_features, ).

    Returns:
        torch.Tensor: (..., out_features).
    """
    if not needs_autograd(h):
        return F.linear(torch.ops.aten.gelu_(h), weight, bias)  # h is ours
    if (not torch.is_autocast_enabled(h.device.type)
            and h.dtype == weight.dtype):
        return _GeluLinear.apply(h, weight, bias)
    return F.linear(F.gelu(h), weight, bias)
