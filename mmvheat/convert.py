"""Converting any vHeat weight file to mmvheat's (mmengine's) format
(``tools/model_converters/vheat_to_mmvheat.py``)."""
import hashlib
import os
import os.path as osp
from collections import OrderedDict
from typing import Optional, Tuple

import torch

from mmvheat.checkpoint import (
    CheckpointError,
    adapt_freq_embeds,
    arch_in_weights,
    backbone_state_dict,
    classifier_state_dict,
    fit_weights,
    is_vheat_weights,
    read_checkpoint,
    save_weights,
    select_weights,
    strip_wrappers,
)
from mmvheat.download import is_url
from mmvheat.models import VHeat
from mmvheat.ops import fve_grid_for
from mmvheat.version import __version__

__all__ = ['convert_checkpoint']


def _check_backbone(state: dict, weights: dict, source: str) -> None:
    """Check that ``state``, the backbone keys of ``weights`` (the file's
    weights, wrappers stripped), is a whole vHeat backbone: the file's own
    arch, fitted (:func:`~mmvheat.checkpoint.fit_weights`) into a VHeat
    built on the meta device; only the ``outnorm{i}`` may be absent.
    Anything else raises, naming what the file holds."""
    arch = arch_in_weights(state)
    if not is_vheat_weights(state) or arch is None:
        found = ', '.join(list(weights)[:8]) or 'no tensors'
        raise CheckpointError(
            f'{source} does not hold vHeat weights (expected the keys '
            "'patch_embed.conv1.weight', 'freq_embed.0' and "
            "'layers.<stage>.<block>.*', bare or under 'backbone.'); it "
            f'holds {len(weights)} tensors: {found}'
            + (' ...' if len(weights) > 8 else ''))
    outs = [i for i in range(4) if f'outnorm{i}.weight' in state]
    grid = arch['grid']
    with torch.device('meta'):
        model = VHeat(
            dict(depths=arch['depths'], dims=arch['dims'],
                 post_norm=arch['layer_scale'],
                 layer_scale=1e-5 if arch['layer_scale'] else None),
            img_size=(grid[0] * 4, grid[1] * 4), out_indices=outs or -1)
    fit_weights(model, state, 'finetune', source=source)


def convert_checkpoint(src: str,
                       dst: str,
                       use_ema: bool = False,
                       img_size: Optional[int] = None,
                       backbone_only: bool = False,
                       fve_mode: str = 'pad',
                       publish: bool = False) -> Tuple[str, dict]:
    """Write a slim mmengine checkpoint (``state_dict`` + ``meta``), or a
    ``.safetensors`` file when ``dst`` ends so.

    The source must hold a whole vHeat backbone (any format and layout:
    the authors', mmengine, timm, bare, safetensors, with ``module.`` or
    ``_orig_mod.`` prefixes); anything else raises
    :class:`~mmvheat.checkpoint.CheckpointError` naming what it holds.

    Args:
        src (str): The source file, a path or an http(s) URL.
        dst (str): Output path (``.pth`` or ``.safetensors``).
        use_ema (bool): Take the file's EMA weights (see
            :func:`~mmvheat.checkpoint.select_weights`). Defaults to False.
        img_size (int, optional): Adapt the FVEs to the grid of this input
            size (512 for the authors' downstream models). Defaults to None
            (keep the checkpoint's grid).
        backbone_only (bool): Write bare backbone keys (for a downstream
            ``init_cfg``) instead of mmpretrain classifier keys
            (``backbone.*``, ``head.fc.*``). Defaults to False.
        fve_mode (str): 'pad' or 'bicubic'. Defaults to 'pad'.
        publish (bool): Append the first 8 hex digits of the file's sha256
            to its name, as OpenMMLab's ``publish_model``. Defaults to False.

    Returns:
        tuple[str, dict]: The written path and a report (``format``,
        ``kept``, ``dropped``, ``adapted``).
    """
    source = str(src)
    weights, fmt = select_weights(read_checkpoint(src), use_ema, source)
    weights = strip_wrappers(weights)
    backbone, dropped = backbone_state_dict(weights)
    _check_backbone(backbone, weights, source)
    if backbone_only:
        state, prefix = backbone, ''
    else:
        state, dropped = classifier_state_dict(weights), []
        prefix = 'backbone.'
    adapted = []
    if img_size is not None:
        adapted = adapt_freq_embeds(
            state, {i: fve_grid_for(img_size, i)
                    for i in range(4)}, fve_mode, prefix)
    state = OrderedDict((k, v.detach().clone().contiguous())
                        for k, v in state.items())
    meta = dict(
        mmvheat_version=__version__,
        converted_from=source if is_url(source) else osp.basename(source),
        source_format=fmt,
        weights='ema' if use_ema else 'model',
        layout='backbone' if backbone_only else 'classifier',
        img_size=img_size)
    dst = save_weights(state, str(dst), meta)
    if publish:
        with open(dst, 'rb') as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        stem, ext = osp.splitext(dst)
        final = f'{stem}-{sha[:8]}{ext}'
        os.replace(dst, final)
        dst = final
    return dst, dict(format=fmt, kept=list(state), dropped=dropped,
                     adapted=adapted)
