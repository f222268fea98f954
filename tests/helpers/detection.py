"""The reduced demo Mask R-CNN with spread-out random weights, its inputs'
metainfo, and mask IoU, for the detector export tests."""
import os

import torch

from .paths import REPO_ROOT

DEMO_DET_CONFIG = os.path.join(REPO_ROOT, 'configs', 'demo',
                               'mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py')


def demo_detector(seed: int = 0):
    """(model, cfg): the reduced demo Mask R-CNN (4 classes, 64-channel
    FPN), eval mode, every weight matrix redrawn from a seeded normal with
    unit gain (std 1/sqrt(fan_in); head biases std 0.1) so that its scores
    spread well above ties and many boxes pass the score threshold. No
    checkpoint, no data needed."""
    from mmengine.config import Config

    from mmvheat.deployment import build_deploy_model
    cfg = Config.fromfile(DEMO_DET_CONFIG)
    torch.manual_seed(seed)
    model = build_deploy_model(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # unit-gain weights: spread scores, no overflow
        for name, p in model.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            elif not name.startswith('backbone'):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        # decided mask logits (as a trained head's): few pixels sit at the
        # 0.5 threshold, where float rounding would flip them
        model.roi_head.mask_head.conv_logits.weight.mul_(4)
    return model.eval(), cfg


def det_data_samples(input_shape, img_shape, ori_shape=None,
                     scale_factor=(1.0, 1.0)) -> list:
    """One mmdet ``DetDataSample`` with the metainfo ``predict`` reads: an
    image resized to ``img_shape`` and padded to ``input_shape``."""
    from mmdet.structures import DetDataSample
    meta = dict(img_shape=tuple(img_shape),
                ori_shape=tuple(ori_shape or img_shape),
                scale_factor=tuple(scale_factor),
                pad_shape=tuple(input_shape),
                batch_input_shape=tuple(input_shape))
    return [DetDataSample(metainfo=meta)]


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU per pair of (N, H, W) boolean masks (1 where both are empty)."""
    a, b = a.flatten(1).bool(), b.flatten(1).bool()
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1),
                       torch.ones_like(union))
