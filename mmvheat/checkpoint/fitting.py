"""Fitting weights into a model: the one loading function.

:func:`load_weights` reads a file (:mod:`.reading`), picks its weights and
strips wrapper prefixes (:mod:`.layouts`), then :func:`fit_weights` maps
them to the model's layout, adapts the FVEs and checks that they fit under
the rule of what the load is for. Every path goes through
:func:`fit_weights`: ``init_cfg`` Pretrained (:func:`load_backbone_weights`),
mmengine's runner (``load_from``, ``--resume``, test; through
:class:`mmvheat.engine.StrictLoadHook` and :func:`check_checkpoint_fits`),
the deployment loader, timm's ``pretrained``, the converter and the
analysis tools.

The rules (``purpose``):

* ``'test'``: every key of the model must be in the file with its shape;
  keys the model does not have are an error inside a vHeat backbone and
  ignored (one log line) elsewhere;
* ``'resume'``: as ``'test'``, and nothing may be left over;
* ``'finetune'`` (``load_from`` when training, ``init_cfg``, timm's
  ``pretrained``): the vHeat backbones must fit (their FVEs are adapted to
  the model's grid, and the ``outnorm{i}`` a classification file has no
  weights for may be absent); other modules' keys may differ (a head with
  another class count): those that do are not loaded, listed in one line.

Nothing is loaded when the rule fails: :class:`~.reading.CheckpointError`
names the missing, unexpected and mismatched keys.
"""
import logging
import re
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
from mmengine.logging import print_log

from mmvheat.ops import resize_freq_embed
from .layouts import (
    arch_in_weights,
    select_weights,
    strip_wrappers,
    to_model_layout,
    vheat_prefixes,
)
from .reading import CheckpointError, read_checkpoint

__all__ = [
    'FVE_MODES', 'LOAD_PURPOSES', 'adapt_freq_embeds', 'state_dict_misfit',
    'describe_misfit', 'fit_weights', 'load_weights', 'load_backbone_weights',
    'check_checkpoint_fits'
]

FVE_MODES = ('pad', 'bicubic')
LOAD_PURPOSES = ('test', 'resume', 'finetune')
_FVE_SUFFIX = re.compile(r'(^|\.)freq_embed\.\d+$')
_OUTNORM = re.compile(r'^outnorm\d\.(weight|bias)$')


def adapt_freq_embeds(state: dict,
                      grids: Dict[int, Tuple[int, int]],
                      mode: str = 'pad',
                      prefix: str = '') -> list:
    """Bring each FVE ``{prefix}freq_embed.i`` to ``grids[i]``, in place.

    ``mode='pad'`` zero-pads at the bottom and right (the authors' recipe for
    detection/segmentation from the 224 ImageNet weights); when the target is
    smaller than the source on a side it falls back to bicubic, with a
    warning. ``mode='bicubic'`` always resizes bicubically
    (``align_corners=False``).

    Args:
        state (dict): State dict to modify.
        grids (dict[int, tuple[int, int]]): Target (H, W) per stage.
        mode (str): 'pad' or 'bicubic'. Defaults to 'pad'.
        prefix (str): Key prefix, e.g. 'backbone.'. Defaults to ''.

    Returns:
        list[str]: One line per adapted FVE (also logged).
    """
    if mode not in FVE_MODES:
        raise ValueError(f'FVE adaptation mode must be one of {FVE_MODES}, '
                         f'got {mode!r}')
    changes = []
    for stage, grid in sorted(grids.items()):
        key = f'{prefix}freq_embed.{stage}'
        if key not in state:
            continue
        fve = state[key]
        if fve.dim() != 3:
            raise CheckpointError(f'{key} should be (H, W, C), got '
                                  f'{tuple(fve.shape)}')
        src = tuple(fve.shape[:2])
        grid = tuple(grid)
        if src == grid:
            continue
        how = mode
        if mode == 'pad' and (grid[0] < src[0] or grid[1] < src[1]):
            how = 'bicubic'
            print_log(
                f'{key}: target grid {grid} is smaller than the checkpoint\'s'
                f' {src}; zero-padding impossible, resizing bicubically',
                logger='current', level=logging.WARNING)
        if how == 'pad':
            new = fve.new_zeros(grid[0], grid[1], fve.shape[2])
            new[:src[0], :src[1]] = fve
        else:
            new = resize_freq_embed(fve.float(), grid).to(fve.dtype)
        state[key] = new.contiguous()
        line = f'{key}: {src} -> {grid} ({how})'
        changes.append(line)
        print_log(f'vHeat FVE adapted: {line}', logger='current')
    return changes


def state_dict_misfit(
    own: dict,
    weights: dict,
    may_be_missing: Callable[[str], bool] = lambda key: False
) -> Tuple[list, list, list]:
    """How ``weights`` fails to fit a model whose state dict is ``own``.

    Args:
        own (dict): The model's state dict.
        weights (dict): The state dict to load.
        may_be_missing (Callable[[str], bool]): Keys of ``own`` that
            ``weights`` may lack (left at their initialisation).

    Returns:
        tuple[list, list, list]: Missing keys, unexpected keys, and shape
        mismatches as ``'key: checkpoint (...) vs model (...)'``; all empty
        when ``weights`` fits.
    """
    missing = [k for k in own if k not in weights and not may_be_missing(k)]
    unexpected = [k for k in weights if k not in own]
    mismatched = [
        f'{k}: checkpoint {tuple(weights[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in own
        if k in weights and weights[k].shape != own[k].shape
    ]
    return missing, unexpected, mismatched


def describe_misfit(header: str, missing: list, unexpected: list,
                    mismatched: list, limit: int = 20) -> str:
    """An error message: ``header``, then one line per non-empty list of
    :func:`state_dict_misfit` (its first ``limit`` items)."""
    return header + '\n' + ''.join(
        _describe(title, items, limit)
        for title, items in (('missing keys', missing),
                             ('unexpected keys', unexpected),
                             ('shape mismatches', mismatched)))


def _describe(title: str, items: Iterable[str], limit: int = 20) -> str:
    items = list(items)
    if not items:
        return ''
    more = f' ... (+{len(items) - limit} more)' if len(items) > limit else ''
    return f'  {title} ({len(items)}): {items[:limit]}{more}\n'


def fit_weights(model: torch.nn.Module,
                weights: dict,
                purpose: str = 'finetune',
                fve_mode: str = 'pad',
                source: str = 'checkpoint',
                adapt: Optional[Callable[[dict], dict]] = None
                ) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Bring ``weights`` to ``model``'s keys and check that they fit.

    Wrapper prefixes are stripped, keys mapped to the model's layout (the
    authors' layout, a backbone-only file into a whole model),
    FVEs adapted (``'finetune'`` only; test and resume must match), then the
    rule of ``purpose`` (see the module docstring) is applied.

    Args:
        model (nn.Module): The model (not a DDP wrapper): a
            :class:`~mmvheat.models.VHeat` or any model holding some.
        weights (dict): A state dict of any layout.
        purpose (str): 'test', 'resume' or 'finetune'. Defaults to
            'finetune'.
        fve_mode (str): How FVEs reach the model's grid, 'pad' or
            'bicubic'. Defaults to 'pad'.
        source (str): The file's name for messages. Defaults to
            'checkpoint'.
        adapt (Callable, optional): A last change to the mapped state
            dict before the check (timm adapts the stem's input channels).
            Defaults to None.

    Returns:
        tuple[OrderedDict, dict]: The state dict to load with
        ``strict=False``, and a report: ``backbones`` (vHeat prefixes),
        ``loaded`` (count), ``ignored`` (keys of the file or the model not
        loaded), ``adapted`` (FVE changes).

    Raises:
        CheckpointError: The weights do not fit; nothing is loaded.
    """
    if purpose not in LOAD_PURPOSES:
        raise ValueError(f'purpose must be one of {LOAD_PURPOSES}, got '
                         f'{purpose!r}')
    prefixes = vheat_prefixes(model)
    state, dropped = to_model_layout(strip_wrappers(weights), prefixes)
    modules = dict(model.named_modules())
    adapted: List[str] = []
    if purpose == 'finetune':
        for prefix in prefixes:
            backbone = modules[prefix[:-1]] if prefix else model
            adapted += adapt_freq_embeds(
                state, {i: backbone.fve_grid(i)
                        for i in range(len(backbone.freq_embed))},
                fve_mode, prefix)
    if adapt is not None:
        state = adapt(state)
    own = model.state_dict()

    def in_backbone(key: str) -> bool:
        return any(key.startswith(p) for p in prefixes)

    def may_be_missing(key: str) -> bool:
        if not in_backbone(key):
            return purpose == 'finetune'
        rest = next(key[len(p):] for p in prefixes if key.startswith(p))
        return purpose == 'finetune' and _OUTNORM.match(rest) is not None

    missing, unexpected, mismatched = state_dict_misfit(
        own, state, may_be_missing)
    ignored = dropped + [k for k in own if k not in state]
    if purpose == 'finetune':
        # other modules' weights that do not fit are not loaded
        for key in [k for k in own if k in state and not in_backbone(k)
                    and state[k].shape != own[k].shape]:
            ignored.append(key)
            del state[key]
        mismatched = [m for m in mismatched if in_backbone(m.split(':')[0])]
    if purpose != 'resume':
        ignored += [k for k in unexpected if not in_backbone(k)]
        unexpected = [k for k in unexpected if in_backbone(k)]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            _refusal(model, state, own, prefixes, source, purpose, missing,
                     unexpected, mismatched))
    for key in [k for k in state if k not in own]:
        del state[key]
    return state, dict(backbones=prefixes, loaded=len(state),
                       ignored=ignored, adapted=adapted)


def _refusal(model, state, own, prefixes, source, purpose, *misfit) -> str:
    """The message of a checkpoint that does not fit."""
    modules = dict(model.named_modules())
    archs = '; '.join(_arch_of(modules[p[:-1]] if p else model, p)
                      for p in prefixes) or 'no vHeat backbone'
    held = '; '.join(h for h in (_arch_in(state, p) for p in prefixes) if h)
    if held:
        archs += f'; the file holds {held}'
    hint = ''
    if any(_FVE_SUFFIX.search(k) and k in state
           and state[k].dim() == own[k].dim() == 3
           and state[k].shape[2] == own[k].shape[2]
           and state[k].shape[:2] != own[k].shape[:2] for k in own):
        hint = ('  (freq_embed shapes follow the backbone\'s img_size: '
                'set model.backbone.img_size to the size the checkpoint '
                'was trained at)\n')
    what = dict(test='testing', resume='resuming',
                finetune='fine-tuning')[purpose]
    name = (getattr(model, 'pretrained_cfg', None) or {}).get(
        'architecture') or f'this {type(model).__name__}'
    return describe_misfit(
        f'{source} does not fit {name} ({archs}); '
        f'refusing to load it for {what}: the results would come from '
        'random or wrong weights.', *misfit, limit=10) + hint


def load_weights(model: torch.nn.Module,
                 checkpoint: Union[str, dict],
                 purpose: str = 'finetune',
                 use_ema: bool = False,
                 fve_mode: str = 'pad',
                 prefix: Optional[str] = None,
                 map_location='cpu',
                 adapt: Optional[Callable[[dict], dict]] = None,
                 url: Optional[str] = None,
                 source: Optional[str] = None) -> dict:
    """Load a weight file of any format users have into ``model``, checked.

    Reads the file (``.pth`` of any kind, ``.safetensors``, an http(s)
    URL), picks its weights (``use_ema`` for the EMA ones), strips wrapper
    prefixes (``module.``, ``_orig_mod.``), maps the layout, adapts the FVEs
    and checks the fit (:func:`fit_weights`); only then copies the weights.

    Args:
        model (nn.Module): The model (not a DDP wrapper).
        checkpoint (str | dict): A path or URL, or an already loaded file.
        purpose (str): The rule, 'test', 'resume' or 'finetune'. Defaults
            to 'finetune'.
        use_ema (bool): Take the file's EMA weights (see
            :func:`~.layouts.select_weights`). Defaults to False.
        fve_mode (str): 'pad' or 'bicubic'. Defaults to 'pad'.
        prefix (str, optional): Take only the file's keys under this prefix
            (e.g. 'backbone.'), without it. Defaults to None (all).
        map_location: As for ``torch.load``. Defaults to 'cpu'.
        adapt (Callable, optional): See :func:`fit_weights`.
        url (str, optional): The URL a local file was downloaded from (for
            messages). Defaults to None.
        source (str, optional): The file's name for messages. Defaults to
            None (the path, or 'checkpoint' for a loaded dict).

    Returns:
        dict: The report of :func:`fit_weights` plus ``format``.
    """
    if source is None:
        source = checkpoint if isinstance(checkpoint, str) else 'checkpoint'
    ckpt = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(
        checkpoint, map_location, url=url)
    weights, fmt = select_weights(ckpt, use_ema, source)
    if prefix:
        weights = strip_wrappers(weights)
        if not any(k.startswith(prefix) for k in weights):
            raise CheckpointError(f'no key of {source} starts with '
                                  f'{prefix!r}')
        weights = OrderedDict((k[len(prefix):], v)
                              for k, v in weights.items()
                              if k.startswith(prefix))
    state, report = fit_weights(model, weights, purpose, fve_mode,
                                f'{source} ({fmt} format)', adapt)
    model.load_state_dict(state, strict=False)
    report['format'] = fmt
    print_log(
        f'{type(model).__name__}: loaded {len(state)} tensors from {source} '
        f'({fmt}{", EMA" if use_ema else ""}); not loaded: '
        f'{_short(report["ignored"]) or "none"}', logger='current')
    return report


def load_backbone_weights(model: torch.nn.Module,
                          checkpoint: str,
                          use_ema: bool = False,
                          fve_mode: str = 'pad',
                          prefix: Optional[str] = None,
                          map_location='cpu') -> dict:
    """``init_cfg=dict(type='Pretrained', ...)`` of a
    :class:`~mmvheat.models.VHeat`: :func:`load_weights` for fine-tuning.

    The backbone must fit except the ``outnorm{i}`` a classification file
    has no weights for; the file's other modules are ignored.
    """
    return load_weights(model, checkpoint, 'finetune', use_ema=use_ema,
                        fve_mode=fve_mode, prefix=prefix,
                        map_location=map_location)


def check_checkpoint_fits(model: torch.nn.Module,
                          checkpoint: dict,
                          purpose: str,
                          source: str = 'checkpoint') -> dict:
    """The strict-loading rule for a checkpoint mmengine's runner loaded
    (``load_from``, ``--resume``, ``tools/test.py``), applied by
    :class:`mmvheat.engine.StrictLoadHook` before any weight is copied
    (mmengine itself loads with ``strict=False`` and only logs).

    Its ``state_dict`` (or the dict itself) is replaced in place by what
    :func:`fit_weights` returns, which mmengine then loads.

    Args:
        model (nn.Module): The model (not a DDP wrapper).
        checkpoint (dict): What mmengine's ``CheckpointLoader`` returned.
        purpose (str): 'test', 'resume' or 'finetune'.
        source (str): The file's name for messages. Defaults to
            'checkpoint'.

    Returns:
        dict: The report of :func:`fit_weights`.
    """
    holder = checkpoint
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        holder = checkpoint['state_dict']
    if not isinstance(holder, dict):
        raise CheckpointError(f'{source}: no state dict to load (got a '
                              f'{type(holder).__name__})')
    state, report = fit_weights(model, holder, purpose, source=source)
    if report['ignored']:
        print_log(
            f'{source}: loaded for {purpose}'
            f'{"; the vHeat backbone fits" if report["backbones"] else ""};'
            f' not loaded ({len(report["ignored"])} keys, left as '
            f'initialised or ignored as the rule for {purpose} allows): '
            f'{_short(report["ignored"])}',
            logger='current', level=logging.WARNING)
    holder.clear()
    holder.update(state)
    return report


def _arch_of(backbone: torch.nn.Module, prefix: str) -> str:
    depths = list(getattr(backbone, 'depths', []))
    dims = list(getattr(backbone, 'dims', []))
    return f'{prefix[:-1] or "model"}: vHeat depths={depths}, dims={dims}'


def _arch_in(state: dict, prefix: str) -> str:
    """The vHeat arch a state dict holds under ``prefix``, for messages."""
    arch = arch_in_weights(state, prefix)
    if arch is None:
        return ''
    return f'depths={arch["depths"]}, dims={arch["dims"]}'


def _short(keys: List[str], limit: int = 6) -> str:
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more
