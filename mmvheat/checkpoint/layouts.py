"""Which weights a checkpoint holds, and their key layouts.

:func:`select_weights` finds the weights in a loaded file of any format
users have; :func:`strip_wrappers` removes the prefixes of wrappers
(DDP's ``module.``, ``torch.compile``'s ``_orig_mod.``);
:func:`to_model_layout` maps them to a model's keys.

Layouts. The authors' files store the stem norms as ``norm1.1.*`` (inside
a permute Sequential), the MLP as 1x1 convs ((out, in, 1, 1) weights) and
each stage's downsample as the last item of the stage
(``layers.{i}.{depth_i}.{0,1}.*``). :class:`~mmvheat.models.VHeat` is
plain: ``patch_embed.norm1.*``, ``mlp.fc1.weight`` of shape (out, in) and
``downsamples.{i}.{0,1}.*``. :func:`map_legacy_keys` maps the first layout
to the second (safe to run twice); the model runs it on every
``load_state_dict``, so both layouts load, and checkpoints saved by this
version use the plain layout. The authors' classifier ``classifier.0``
(LayerNorm) is the backbone's ``outnorm3`` and ``classifier.3`` (Linear)
is mmpretrain's (and timm's) ``head.fc``.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

from .reading import CheckpointError

__all__ = [
    'select_weights', 'extract_weights', 'strip_wrappers',
    'map_legacy_keys', 'official_classifier_keys', 'backbone_state_dict',
    'classifier_state_dict', 'to_model_layout', 'vheat_prefixes',
    'arch_in_weights', 'is_vheat_weights'
]

# the authors' stem: every vHeat backbone state dict has it
_STEM_KEY = 'patch_embed.conv1.weight'


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor)
        for k, v in obj.items())


def select_weights(ckpt: dict, use_ema: bool = False,
                   source: str = 'checkpoint') -> Tuple[dict, str]:
    """The weights of a loaded checkpoint, of any format users have.

    ============  ==========================  ==============================
    format        weights                     ``use_ema=True``
    ============  ==========================  ==============================
    official      ``model``                   ``model_ema``
    timm          ``state_dict`` (train.py)   ``state_dict_ema``
    mmengine      ``state_dict``              ``state_dict`` when the file
                                              has ``ema_state_dict``
                                              (mmengine's ``EMAHook`` saves
                                              the average there)
    bare          the dict itself             (no EMA)
    ============  ==========================  ==============================

    ``.safetensors`` files read as ``state_dict`` plus ``meta``.

    Args:
        ckpt (dict): What :func:`~.reading.read_checkpoint` returned.
        use_ema (bool): Take the file's EMA weights. Defaults to False.
        source (str): Name for messages. Defaults to 'checkpoint'.

    Returns:
        tuple[dict, str]: The state dict and its format: 'official',
        'timm', 'mmengine' or 'bare'.

    Raises:
        CheckpointError: No weights where a format keeps them, or no EMA
            weights when ``use_ema`` asks for them.
    """
    if 'model' in ckpt and _is_state_dict(ckpt['model']):
        fmt, key, ema = 'official', 'model', 'model_ema'
    elif 'state_dict' in ckpt and _is_state_dict(ckpt['state_dict']):
        key = 'state_dict'
        if 'state_dict_ema' in ckpt or 'args' in ckpt:
            fmt, ema = 'timm', 'state_dict_ema'
        else:
            fmt, ema = 'mmengine', 'ema_state_dict'
    elif _is_state_dict(ckpt):
        return OrderedDict(ckpt), _no_ema('bare', use_ema, source, ckpt)
    else:
        raise CheckpointError(
            f'{source} is not a vHeat checkpoint in a known format (expected '
            "weights under 'model', 'state_dict', or a bare state dict); its "
            f'top-level keys: {sorted(ckpt)[:20]}')
    if use_ema:
        if not isinstance(ckpt.get(ema), dict):
            _no_ema(fmt, use_ema, source, ckpt)
        if fmt != 'mmengine':
            key = ema
    return OrderedDict(ckpt[key]), fmt


def _no_ema(fmt: str, use_ema: bool, source: str, ckpt: dict) -> str:
    if use_ema:
        raise CheckpointError(
            f'{source} ({fmt} format) holds no EMA weights (looked for '
            "'model_ema', 'state_dict_ema', or mmengine's 'ema_state_dict');"
            f' its top-level keys: {sorted(ckpt)[:20]}')
    return fmt


def extract_weights(ckpt: dict, use_ema: bool = False,
                    source: str = 'checkpoint') -> Tuple[dict, str]:
    """:func:`select_weights`, then :func:`strip_wrappers`."""
    weights, fmt = select_weights(ckpt, use_ema, source)
    return strip_wrappers(weights), fmt


_WRAPPER = re.compile(r'(^|\.)_orig_mod\.')


def strip_wrappers(weights: dict) -> 'OrderedDict[str, torch.Tensor]':
    """Keys without the prefixes wrappers add: a leading ``module.``
    (DDP, DataParallel) and ``_orig_mod.`` anywhere (a model or submodule
    compiled with ``torch.compile``), in any nesting."""
    out = OrderedDict()
    for key, value in weights.items():
        key = _WRAPPER.sub(r'\1', key)
        while key.startswith('module.'):
            key = _WRAPPER.sub(r'\1', key[len('module.'):])
        out[key] = value
    return out


def official_classifier_keys(weights: dict,
                             prefix: str = 'backbone.') -> 'OrderedDict':
    """Backbone-layout keys (the authors' classifier, or a bare backbone's)
    under a model's backbone ``prefix``: ``classifier.0.*`` (the head
    LayerNorm) -> ``{prefix}outnorm3.*``, ``classifier.3.*`` (the Linear) ->
    ``head.fc.*`` beside the backbone, the rest -> ``{prefix}*``. Other
    ``classifier.*`` keys are left as they are."""
    head = (prefix[:-len('backbone.')] if prefix.endswith('backbone.')
            else prefix) + 'head.fc.'
    out = OrderedDict()
    for key, value in weights.items():
        if key.startswith('classifier.0.'):
            key = prefix + 'outnorm3.' + key[len('classifier.0.'):]
        elif key.startswith('classifier.3.'):
            key = head + key[len('classifier.3.'):]
        elif not key.startswith('classifier.'):
            key = prefix + key
        out[key] = value
    return out


_LEGACY_KEY = re.compile(
    r'^(?:patch_embed\.(?P<stem>norm[12])\.1\.(?P<stem_param>weight|bias)'
    r'|layers\.(?P<stage>\d+)\.\d+\.(?P<item>[01])\.(?P<param>weight|bias)'
    r'|(?P<mlp>layers\.\d+\.\d+\.mlp\.fc[12]\.weight))$')


def map_legacy_keys(state: Dict[str, torch.Tensor],
                    prefix: str = '') -> 'OrderedDict[str, torch.Tensor]':
    """The authors' backbone key layout mapped to :class:`VHeat`'s.

    * ``patch_embed.norm{1,2}.1.*`` -> ``patch_embed.norm{1,2}.*``;
    * ``layers.{i}.{depth_i}.{0,1}.*`` (the downsample after stage ``i``)
      -> ``downsamples.{i}.{0,1}.*``;
    * ``mlp.fc{1,2}.weight`` of shape (out, in, 1, 1) -> (out, in).

    Only keys under ``prefix`` (the backbone's, e.g. ``'backbone.'``) are
    looked at; other keys pass through. Keys already in the plain layout
    are left as they are, so running it twice changes nothing.

    Args:
        state (dict): A state dict in either layout.
        prefix (str): The backbone's key prefix. Defaults to ''.

    Returns:
        OrderedDict: The state dict in the plain layout (same tensors,
        reshaped views for the MLP weights), in the same order.
    """
    out = OrderedDict()
    for key, value in state.items():
        m = _LEGACY_KEY.match(key[len(prefix):]) if key.startswith(
            prefix) else None
        if m is None:
            pass
        elif m.group('stem'):
            key = (f"{prefix}patch_embed.{m.group('stem')}."
                   f"{m.group('stem_param')}")
        elif m.group('stage'):
            key = (f"{prefix}downsamples.{m.group('stage')}."
                   f"{m.group('item')}.{m.group('param')}")
        elif value.dim() == 4 and tuple(value.shape[2:]) == (1, 1):
            value = value.flatten(1)
        out[key] = value
    return out


def backbone_state_dict(weights: dict) -> Tuple[dict, list]:
    """The backbone's keys of any format, without prefix.

    ``backbone.*`` keys are taken when present (mmengine models); otherwise
    the keys are official/bare backbone keys and ``classifier.*`` is dropped.

    Returns:
        tuple[dict, list]: The backbone state dict and the dropped keys.
    """
    if any(k.startswith('backbone.') for k in weights):
        kept = OrderedDict((k[len('backbone.'):], v)
                           for k, v in weights.items()
                           if k.startswith('backbone.'))
        dropped = [k for k in weights if not k.startswith('backbone.')]
    else:
        kept = OrderedDict((k, v) for k, v in weights.items()
                           if not k.startswith('classifier.'))
        dropped = [k for k in weights if k.startswith('classifier.')]
    return map_legacy_keys(kept), dropped


def classifier_state_dict(weights: dict) -> dict:
    """Keys of mmpretrain's ``ImageClassifier(VHeat, GAP, LinearClsHead)``.

    Official keys map as ``classifier.0.*`` -> ``backbone.outnorm3.*``,
    ``classifier.3.*`` -> ``head.fc.*``, the rest -> ``backbone.*``. Keys
    already in that layout pass through unchanged.
    """
    if any(k.startswith('backbone.') for k in weights):
        return map_legacy_keys(weights, 'backbone.')
    odd = [k for k in weights if k.startswith('classifier.')
           and not k.startswith(('classifier.0.', 'classifier.3.'))]
    if odd:
        raise CheckpointError(f'unexpected classifier key {odd[0]!r} (the '
                              'official head has classifier.0 and .3)')
    return map_legacy_keys(official_classifier_keys(weights), 'backbone.')


def vheat_prefixes(model: torch.nn.Module) -> List[str]:
    """Key prefixes of the vHeat backbones inside ``model`` ('' for the
    model itself). Found by their interface (``fve_grid``, ``freq_embed``),
    so this module does not import the model."""
    return [
        f'{name}.' if name else ''
        for name, module in model.named_modules()
        if hasattr(module, 'fve_grid') and hasattr(module, 'freq_embed')
    ]


def to_model_layout(weights: dict,
                    prefixes: List[str]) -> Tuple['OrderedDict', list]:
    """``weights`` (wrappers stripped) in the key layout of a model whose
    vHeat backbones sit at ``prefixes`` (:func:`vheat_prefixes`).

    * a bare backbone (``prefixes == ['']``): the file's ``backbone.*``
      keys when it has any (a whole-model file), else its keys without
      ``classifier.*`` (the authors' head is not the backbone's);
    * one backbone at ``prefix`` and a file in backbone layout (the
      authors' classifier, a bare backbone): see
      :func:`official_classifier_keys`;
    * then the authors' layout under each prefix (:func:`map_legacy_keys`).

    Returns:
        tuple[OrderedDict, list]: The state dict and the keys dropped.
    """
    if prefixes == ['']:
        return backbone_state_dict(weights)
    if len(prefixes) == 1 and _STEM_KEY in weights and not any(
            k.startswith(prefixes[0]) for k in weights):
        weights = official_classifier_keys(weights, prefixes[0])
    for prefix in prefixes:
        weights = map_legacy_keys(weights, prefix)
    return OrderedDict(weights), []


def is_vheat_weights(weights: dict, prefix: str = '') -> bool:
    """Whether ``weights`` hold a vHeat backbone under ``prefix``: its stem
    conv and a 3-d frequency value embedding (FVE) of stage 0."""
    fve = weights.get(prefix + 'freq_embed.0')
    return prefix + _STEM_KEY in weights and isinstance(
        fve, torch.Tensor) and fve.dim() == 3


def arch_in_weights(weights: dict, prefix: str = '') -> Optional[dict]:
    """The vHeat arch a state dict holds under ``prefix``: ``depths`` and
    ``dims`` (4 each; a stage without blocks or FVE counts 0),
    ``layer_scale`` (whether the blocks have ``gamma1``) and ``grid`` (the
    stage-0 FVE's (H, W)). None when it holds no vHeat blocks."""
    depths: Dict[int, int] = {}
    dims: Dict[int, int] = {}
    block = re.compile(re.escape(prefix) + r'layers\.(\d+)\.(\d+)\.norm1\.')
    fve = re.compile(re.escape(prefix) + r'freq_embed\.(\d+)$')
    for key, value in weights.items():
        m = block.match(key)
        if m:
            stage = int(m.group(1))
            depths[stage] = max(depths.get(stage, 0), int(m.group(2)) + 1)
        m = fve.match(key)
        if m and value.dim() == 3:
            dims[int(m.group(1))] = int(value.shape[-1])
    if not depths:
        return None
    stages = range(max(max(depths), max(dims, default=0), 3) + 1)
    grid = weights.get(prefix + 'freq_embed.0')
    return dict(
        depths=[depths.get(i, 0) for i in stages],
        dims=[dims.get(i, 0) for i in stages],
        layer_scale=any(k.startswith(prefix + 'layers.') and
                        k.endswith('.gamma1') for k in weights),
        grid=tuple(grid.shape[:2]) if grid is not None and grid.dim() == 3
        else None)
