"""What a backbone's stages respond to: feature maps and effective
receptive fields (ERFs), for vHeat or any backbone whose ``forward`` returns
a tuple of (B, C, H, W) stage outputs (e.g. mmpretrain's Swin)."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

__all__ = [
    'stage_features', 'channel_norm', 'pca_rgb', 'output_cell',
    'effective_receptive_field', 'area_ratio', 'build_swin'
]


def stage_features(backbone: nn.Module,
                   image: torch.Tensor,
                   before_norm: bool = False) -> List[torch.Tensor]:
    """Run the backbone without gradients and return its stage outputs.

    Args:
        backbone (nn.Module): Returns a tuple of (B, C, H, W) tensors.
        image (torch.Tensor): Normalised images (B, 3, H, W).
        before_norm (bool): Return each output as it enters its output norm
            (``outnorm{i}`` of a VHeat, captured by a hook) instead of the
            normalised output. Useful for channel norms: after a LayerNorm
            every position has the same norm. Defaults to False.

    Returns:
        list[torch.Tensor]: The outputs of the first image, each (C, h, w).
    """
    captured: List[torch.Tensor] = []
    handles = []
    if before_norm:
        for i in getattr(backbone, 'out_indices', ()):
            norm = getattr(backbone, f'outnorm{i}', None)
            if norm is None:
                raise ValueError('before_norm needs a backbone with an '
                                 f'outnorm{i} module (a VHeat)')
            handles.append(
                norm.register_forward_pre_hook(
                    lambda _, args: captured.append(args[0].detach())))
    try:
        with torch.no_grad():
            outs = backbone(image)
    finally:
        for handle in handles:
            handle.remove()
    if before_norm:  # VHeat's output norms act on channels-last maps
        return [x[0].permute(2, 0, 1) for x in captured]
    return [out[0].detach() for out in outs]


def channel_norm(feature: torch.Tensor) -> torch.Tensor:
    """L2 norm over channels of a (C, h, w) feature map -> (h, w)."""
    return feature.float().norm(dim=0)


def pca_rgb(feature: torch.Tensor) -> torch.Tensor:
    """Project a (C, h, w) feature map on its 3 main components as RGB.

    Each component is centred, scaled to [0, 1] between its 1st and 99th
    percentiles and clipped; missing components (C < 3 or too few cells)
    stay at 0.5.

    Args:
        feature (torch.Tensor): (C, h, w).

    Returns:
        torch.Tensor: (h, w, 3) in [0, 1].
    """
    c, h, w = feature.shape
    x = feature.detach().float().reshape(c, h * w).t()
    x = x - x.mean(dim=0, keepdim=True)
    rgb = torch.full((h * w, 3), 0.5)
    if h * w > 1 and float(x.abs().max()) > 0:
        _, _, v = torch.linalg.svd(x, full_matrices=False)
        comps = x @ v[:3].t()
        for i in range(comps.shape[1]):
            lo, hi = torch.quantile(comps[:, i], torch.tensor([0.01, 0.99]))
            if hi > lo:
                rgb[:, i] = ((comps[:, i] - lo) / (hi - lo)).clamp(0, 1)
    return rgb.reshape(h, w, 3)


def output_cell(rel_point: Tuple[float, float],
                size: Tuple[int, int]) -> Tuple[int, int]:
    """The cell of an (h, w) output map at relative position (y, x).

    Args:
        rel_point (tuple[float, float]): (y, x) in [0, 1].
        size (tuple[int, int]): Map size (h, w).

    Returns:
        tuple[int, int]: (y, x) cell.
    """
    ry, rx = rel_point
    if not (0 <= ry <= 1 and 0 <= rx <= 1):
        raise ValueError(f'the ERF point must lie in [0, 1], got {rel_point}')
    h, w = size
    return min(int(ry * h), h - 1), min(int(rx * w), w - 1)


def effective_receptive_field(
    backbone: nn.Module,
    image: torch.Tensor,
    rel_point: Tuple[float, float] = (0.5, 0.5)
) -> List[Tuple[torch.Tensor, Tuple[int, int], Tuple[int, int]]]:
    """ERF of one output location per stage (Luo et al., 2016).

    For each stage output ``f`` (C, h, w), the gradient of
    ``sum_c ReLU(f[c, y, x])`` (the RepLKNet convention; a plain channel sum
    would be constant after a LayerNorm) with respect to the input image,
    absolute, summed over the colour channels. All stages come from one
    forward pass; the model is put in eval mode.

    Args:
        backbone (nn.Module): Returns a tuple of (B, C, h, w) outputs.
        image (torch.Tensor): One normalised image (1, 3, H, W).
        rel_point (tuple[float, float]): Output location as relative (y, x)
            in [0, 1]. Defaults to the centre.

    Returns:
        list[tuple]: Per output: the ERF map (H, W), the chosen output cell
        (y, x) and the output map's size (h, w).
    """
    backbone.eval()
    x = image[:1].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        outs = backbone(x)
        results = []
        for i, out in enumerate(outs):
            cell = output_cell(rel_point, tuple(out.shape[-2:]))
            target = torch.relu(out[0, :, cell[0], cell[1]]).sum()
            grad, = torch.autograd.grad(target,
                                        x,
                                        retain_graph=i < len(outs) - 1)
            results.append((grad[0].abs().sum(dim=0).detach(), cell,
                            tuple(out.shape[-2:])))
    return results


def area_ratio(erf: torch.Tensor, fraction: float) -> float:
    """Smallest share of the image holding ``fraction`` of the ERF's mass.

    Args:
        erf (torch.Tensor): Non-negative (H, W) map.
        fraction (float): In (0, 1], e.g. 0.5.

    Returns:
        float: Share of pixels in [0, 1]; larger means a wider ERF.
    """
    values = erf.flatten().double().sort(descending=True).values
    total = values.sum()
    if total <= 0:
        return 0.0
    cum = values.cumsum(0) / total
    count = int(
        torch.searchsorted(cum, torch.tensor(fraction,
                                             dtype=cum.dtype)).item()) + 1
    return min(count, values.numel()) / values.numel()


def build_swin(
    arch: str = 'tiny',
    checkpoint: Optional[str] = None,
    out_indices: Sequence[int] = (0, 1, 2, 3)
) -> nn.Module:
    """mmpretrain's Swin Transformer backbone, for comparisons.

    Args:
        arch (str): Swin arch name. Defaults to 'tiny'.
        checkpoint (str, optional): mmpretrain checkpoint (``backbone.``
            keys are taken); None keeps the random init. Defaults to None.
        out_indices (Sequence[int]): Stages to output.
            Defaults to (0, 1, 2, 3).

    Returns:
        nn.Module: The backbone, in eval mode.

    Raises:
        ImportError: When mmpretrain cannot be imported.
    """
    try:
        from mmpretrain.models import SwinTransformer
    except Exception as err:
        raise ImportError(
            'the Swin comparison needs mmpretrain, which could not be '
            f'imported ({type(err).__name__}: {err}); install it (pip install'
            ' mmpretrain) or leave out --erf-compare') from err
    swin = SwinTransformer(arch=arch,
                           out_indices=tuple(out_indices),
                           pad_small_map=True)  # any image size
    for m in swin.modules():  # mmpretrain's usual init, without its log
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if checkpoint is not None:
        _load_swin_weights(swin, checkpoint)
    swin.eval()  # (its train() returns None)
    return swin


def _load_swin_weights(swin: nn.Module, checkpoint: str) -> None:
    """Load the backbone weights of a Swin checkpoint (an mmpretrain
    classifier's ``backbone.*`` or bare keys) through
    :func:`mmvheat.checkpoint.load_weights`; the output norms a classifier
    file lacks stay at their init; raise when nothing fits."""
    from mmvheat.checkpoint import load_weights, read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    state = ckpt.get('state_dict', ckpt)
    prefix = 'backbone.' if any(
        k.startswith('backbone.') for k in state) else None
    report = load_weights(swin, ckpt, 'finetune', prefix=prefix,
                          source=checkpoint)
    if not report['loaded']:
        raise ValueError(f'{checkpoint} holds no weights of this Swin '
                         'backbone')
