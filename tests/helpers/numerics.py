"""Comparing tensors and filling models with distinct random values."""
import re

import torch


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def randomise(model: torch.nn.Module) -> dict:
    """Give every tensor distinct random values (LN, gammas, biases too)."""
    sd = model.state_dict()
    g = torch.Generator().manual_seed(1)
    for key, value in sd.items():
        noise = torch.randn(value.shape, generator=g) * 0.1
        if key.endswith('norm.weight') or re.search(r'norm\d?(\.1)?\.weight$',
                                                    key) or 'gamma' in key:
            noise = noise + 1
        value.copy_(noise)
    model.load_state_dict(sd)
    return sd


def perturbed_vheat(arch: dict, **kwargs) -> torch.nn.Module:
    """A seeded VHeat of ``arch`` at 64 with all four outputs, every
    parameter moved off its init (non-trivial conductivities and norms), in
    eval mode."""
    from mmvheat.models import VHeat
    torch.manual_seed(0)
    model = VHeat(arch, img_size=64, out_indices=(0, 1, 2, 3), **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()
