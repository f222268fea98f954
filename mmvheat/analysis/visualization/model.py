"""The vHeat backbone of a config, with or without a checkpoint."""
import logging
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log

__all__ = ['build_vheat_backbone']


def build_vheat_backbone(cfg: Config,
                         checkpoint: Optional[str] = None,
                         device: str = 'cpu',
                         out_indices: Sequence[int] = (0, 1, 2, 3),
                         seed: int = 0) -> nn.Module:
    """Build ``cfg.model.backbone`` (a VHeat) outputting every stage.

    The config's ``init_cfg`` is ignored; weights come from ``checkpoint``
    (any vHeat format, see :func:`mmvheat.checkpoint.load_backbone_weights`)
    or, without one, from the random initialisation (seeded), with a
    warning. Output norms the checkpoint lacks (``outnorm{i}`` of stages
    its model did not output) stay at their identity-affine init.

    Args:
        cfg (Config): The full config.
        checkpoint (str, optional): Weights. Defaults to None.
        device (str): Device. Defaults to 'cpu'.
        out_indices (Sequence[int]): Stages to output.
            Defaults to (0, 1, 2, 3).
        seed (int): Seed of the random init. Defaults to 0.

    Returns:
        VHeat: The backbone in eval mode.
    """
    from mmvheat.models import VHeat
    model_cfg = cfg.get('model', None) or {}
    backbone_cfg = model_cfg.get('backbone', None)
    if backbone_cfg is None or not str(backbone_cfg.get('type',
                                                        '')).endswith('VHeat'):
        kind = None if backbone_cfg is None else backbone_cfg.get('type')
        raise ValueError('the config has no vHeat backbone under '
                         f'model.backbone (found type {kind!r})')
    kwargs = backbone_cfg.to_dict() if hasattr(
        backbone_cfg, 'to_dict') else dict(backbone_cfg)
    for key in ('type', 'init_cfg', 'frozen_stages', 'with_cp'):
        kwargs.pop(key, None)
    kwargs['out_indices'] = tuple(out_indices)
    torch.manual_seed(seed)
    backbone = VHeat(**kwargs)
    if checkpoint is None:
        print_log(
            'visualize_heat: no checkpoint given, the vHeat backbone is '
            'RANDOMLY INITIALISED (figures show the untrained model)',
            logger='current',
            level=logging.WARNING)
    else:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
        from mmvheat.checkpoint import load_backbone_weights
        load_backbone_weights(backbone, checkpoint)
    return backbone.to(device).eval()
