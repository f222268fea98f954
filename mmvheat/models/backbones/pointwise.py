"""A 1x1 convolution computed as a matrix product over channels.

On channels-last memory a 1x1 convolution *is* a GEMM over the channel
dim. :class:`PointwiseConv2d` is an ``nn.Conv2d`` (same parameters, keys,
shapes and (B, C, H, W) interface; hooks, wrappers and ``parametrize`` see
an ordinary conv) whose forward runs that GEMM on the channels-last view
instead of a convolution kernel, which on these CPUs was 10-20% faster for
the MLP's widths.

In training it saves its input *as given* (not a reshaped view of it) for
the weight gradient, so :func:`~mmvheat.models.backbones.recompute.act_then`
can recognise that input and keep a recipe instead.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvheat.ops import needs_autograd


def _linear_nchw(x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, bias)`` for a 1x1 kernel, as a GEMM on the
    channels-last view of (B, C, H, W) ``x``; (B, C', H, W) out, in
    channels-last memory."""
    y = F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias)
    return y.permute(0, 3, 1, 2)


class _PointwiseFunction(torch.autograd.Function):
    """The GEMM with hand-written backward, saving ``x`` itself."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        out = _linear_nchw(x, weight, bias)
        # under autocast the GEMM ran in this dtype; backward follows it
        ctx.compute_dtype = out.dtype
        ctx.weight_dtype = weight.dtype
        ctx.bias_dtype = bias.dtype if bias is not None else None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        dtype = ctx.compute_dtype
        g = grad.to(dtype).permute(0, 2, 3, 1).reshape(-1, grad.shape[1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            w = weight.flatten(1).to(dtype)
            grad_x = (g @ w).view(x.shape[0], x.shape[2], x.shape[3],
                                  -1).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            xs = x.to(dtype).permute(0, 2, 3, 1).reshape(-1, x.shape[1])
            grad_w = (g.t() @ xs).view(weight.shape).to(ctx.weight_dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0).to(ctx.bias_dtype)
        return grad_x, grad_w, grad_b


class PointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1)`` run as a GEMM over
    channels (see the module docstring).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        bias (bool): Whether to add a bias. Defaults to True.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) in, (B, C_out, H, W) out (channels-last memory
        when ``x`` is channels-last)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects (B, {self.in_channels}, H, '
                f'W) input, got {tuple(x.shape)}')
        if not needs_autograd(x, self.weight, *(
                [self.bias] if self.bias is not None else [])):
            return _linear_nchw(x, self.weight, self.bias)
        return _PointwiseFunction.apply(x, self.weight, self.bias)
