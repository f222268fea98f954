"""What every exported graph is made of: the error type, the data
preprocessor's normalisation as graph ops, and the task graph around the
exportable backbone (images in, the task's tensors out). Imported by
:mod:`.models` and :mod:`.detection`; imports neither."""
import copy
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .graph import exportable_backbone, exportable_pooling

__all__ = ['DeployError', 'Normalize', 'preprocess_of']


class DeployError(ValueError):
    """A model, size or option this deployment code cannot handle."""


def preprocess_of(model: nn.Module) -> Tuple[list, list, bool]:
    """(mean, std, bgr_to_rgb) of the model's data preprocessor."""
    pre = model.data_preprocessor
    flip = any(bool(getattr(pre, name, False)) for name in
               ('_channel_conversion', 'channel_conversion', 'to_rgb'))
    if not getattr(pre, '_enable_normalize', True):
        return [0.0] * 3, [1.0] * 3, flip
    mean = getattr(pre, 'mean').flatten().tolist()
    std = getattr(pre, 'std').flatten().tolist()
    return mean, std, flip


class Normalize(nn.Module):
    """``(x[:, order] - mean) / std``: the data preprocessor's
    normalisation (and BGR -> RGB flip) as graph ops.

    Args:
        mean (Sequence[float]): Per-channel mean.
        std (Sequence[float]): Per-channel std.
        flip_channels (bool): Reverse the channel order first.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float],
                 flip_channels: bool = False) -> None:
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer('std', torch.tensor(std).view(1, -1, 1, 1))
        self.flip_channels = flip_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip_channels:
            x = x.flip(1)
        return (x - self.mean) / self.std


class _TaskGraph(nn.Module):
    """Optional normalisation, the exportable backbone, then the task's
    head (see :func:`export_graph`)."""

    def __init__(self, model: nn.Module, fixed_size, normalize: bool,
                 backbone_only: bool) -> None:
        super().__init__()
        # a detector's task graph stops at the neck (see MaskRCNNGraph)
        self.task = 'backbone' if backbone_only else (
            'neck' if model.task == 'detector' else model.task)
        self.normalize = Normalize(*preprocess_of(model)) if normalize \
            else nn.Identity()
        self.backbone = exportable_backbone(model.backbone, fixed_size)
        self.neck = None if backbone_only else getattr(model, 'neck', None)
        if self.task == 'classifier':
            self.head = model.head
        elif self.task == 'segmentor':
            # a copy: the user's model keeps its own pooling modules
            self.head = exportable_pooling(copy.deepcopy(model.decode_head))
        else:
            self.head = None

    def forward(self, x: torch.Tensor):
        feats = self.backbone(self.normalize(x))
        if self.neck is not None:
            feats = self.neck(feats)
        if self.task == 'classifier':
            return self.head(feats)
        if self.task == 'segmentor':
            logits = self.head(feats)
            return F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                                 align_corners=self.head.align_corners)
        return tuple(feats)
