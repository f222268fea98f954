"""Mixed precision as PyTorch's recipe runs it: the forward (and the loss)
under ``torch.autocast``, the backward *outside* the context (the
``torch.amp`` docs, mmengine's ``AmpOptimWrapper``, timm's ``--amp``).
Gradients are compared with fp32 by direction (cosine)."""
import pytest
import torch

from helpers.reference import SMALL, SMALL_PRE
from mmvheat.models import VHeat

# bf16 keeps 8 mantissa bits; the gradient as a whole still points the way
# fp32's does
MIN_COSINE = 0.99


def flat_grads(model: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad.flatten() for p in model.parameters()
             if p.grad is not None]
    assert grads, 'no parameter got a gradient'
    return torch.cat(grads).float()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a, b, dim=0).item()


def recipe_grads(model, loss_fn, dtype=None, device='cpu'):
    """Gradients of ``loss_fn(model)`` with the forward under autocast
    (``dtype``; None for fp32) and the backward outside it."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)  # same drop-path draws
    with torch.autocast(device, dtype=dtype or torch.bfloat16,
                        enabled=dtype is not None):
        loss = loss_fn(model)
    loss.float().backward()
    return flat_grads(model)


def backbone_loss(x):
    weights = {}

    def loss(model):
        total = 0
        for i, out in enumerate(model(x)):
            w = weights.setdefault(i, torch.linspace(-1, 1, out.numel()))
            total = total + (out.float().flatten() * w).sum()
        return total

    return loss


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('options', [
    dict(),  # the defaults
    dict(selective_cp=True),
    dict(with_cp=True),
    dict(selective_cp=True, with_cp=True),
])
def test_recipe_trains_backbone(options, dtype):
    """Every checkpointing choice trains under the recipe; the FVE at its
    own size (shared by a stage's blocks, cached by autocast) included."""
    model = VHeat(SMALL_PRE, img_size=64, out_indices=(0, 3),
                  drop_path_rate=0.2, **options).train()
    loss = backbone_loss(torch.randn(2, 3, 64, 64))
    ref = recipe_grads(model, loss)
    amp = recipe_grads(model, loss, dtype)
    assert torch.isfinite(amp).all()
    assert cosine(amp, ref) > MIN_COSINE


def test_recipe_with_two_forwards_in_one_context():
    """A model run twice under one autocast context (two views, as in
    contrastive training) finds every weight cast in autocast's cache the
    second time; selective checkpointing still recomputes in backward, and
    its gradients are plain autograd's under the same autocast."""
    sac = VHeat(SMALL, img_size=48, selective_cp=True).train()
    plain = VHeat(SMALL, img_size=48).train()
    plain.load_state_dict(sac.state_dict())
    view1 = backbone_loss(torch.randn(2, 3, 48, 48))
    view2 = backbone_loss(torch.randn(2, 3, 40, 56))

    def loss(m):
        return view1(m) - view2(m)

    amp = recipe_grads(sac, loss, torch.bfloat16)
    assert cosine(amp, recipe_grads(sac, loss)) > MIN_COSINE
    plain_amp = recipe_grads(plain, loss, torch.bfloat16)
    assert (amp - plain_amp).abs().max() < 1e-2 * plain_amp.abs().max()


def test_selective_checkpointing_is_opt_in():
    """Full speed by default (as ``with_cp`` in OpenMMLab backbones): no
    block checkpoints unless asked."""
    assert not any(b.selective_cp for s in VHeat(SMALL).layers for b in s)
    assert all(b.selective_cp
               for s in VHeat(SMALL, selective_cp=True).layers for b in s)


def test_recipe_with_grad_scaler_steps():
    """fp16 with ``torch.amp.GradScaler`` (the CUDA recipe; CPU autocast
    takes fp16 too): a few optimiser steps lower the loss and leave the
    weights finite."""
    model = VHeat(SMALL_PRE, img_size=32, selective_cp=True).train()
    head = torch.nn.Linear(32, 3)
    params = list(model.parameters()) + list(head.parameters())
    optim = torch.optim.AdamW(params, lr=1e-3)
    scaler = torch.amp.GradScaler('cpu')
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8, ))
    losses = []
    for _ in range(6):
        optim.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.float16):
            logits = head(model(x)[0].mean(dim=(2, 3)))
            loss = torch.nn.functional.cross_entropy(logits, y)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
        losses.append(loss.item())
    assert all(torch.isfinite(p).all() for p in params)
    assert losses[-1] < losses[0]


def test_recipe_compiles_without_graph_break():
    """Selective checkpointing under autocast traces as one graph
    (``fullgraph=True``) and gives eager's gradients."""
    import torch._dynamo.testing
    counter = torch._dynamo.testing.CompileCounter()
    torch._dynamo.reset()
    model = VHeat(SMALL_PRE, img_size=32, selective_cp=True,
                  drop_path_rate=0.).train()
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    loss = backbone_loss(torch.randn(2, 3, 32, 32))
    eager = recipe_grads(model, loss, torch.bfloat16)
    assert cosine(recipe_grads(compiled, loss, torch.bfloat16),
                  eager) > 0.9999
    assert counter.frame_count == 1
