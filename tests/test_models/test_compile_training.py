"""``torch.compile`` training with changing input sizes (detection and
segmentation batches change size; torch.compile goes dynamic on its own
after the first recompile)."""
import copy

import pytest
import torch

from helpers.numerics import rel_err
from mmvheat.models import VHeat
from mmvheat.utils.runner import COMPILE_OPTIONS


def outputs_and_grads(fn, model, x):
    """Outputs of ``fn(x)`` and the gradients of ``model``'s parameters
    (``fn`` is ``model`` or its compiled form, which shares them)."""
    model.zero_grad(set_to_none=True)
    outs = fn(x)
    sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum()
        for o in outs).backward()
    return outs, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.slow  # one dynamic-shape compile of forward and backward
def test_compiled_training_follows_input_sizes():
    """One compiled model (dynamic shapes, the tools' inductor options)
    trains at two input sizes with eager's outputs and gradients."""
    model = VHeat(dict(depths=[1, 1, 1, 1], dims=8), img_size=64,
                  out_indices=(0, 1, 2, 3), drop_path_rate=0.).train()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, dynamic=True, options=COMPILE_OPTIONS)
    for size in [(64, 48), (96, 80)]:  # not square: one graph for both
        x = torch.randn(2, 3, *size)
        outs, grads = outputs_and_grads(compiled, model, x)
        ref_outs, ref_grads = outputs_and_grads(eager, eager, x)
        for a, b in zip(outs, ref_outs):
            assert a.shape == b.shape and rel_err(a, b) < 1e-4
        for name, grad in ref_grads.items():
            assert rel_err(grads[name], grad) < 1e-3, name
