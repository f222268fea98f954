"""Reading vHeat checkpoints of every format, in one place.

Reading, key mapping and FVE adaptation all live here; :mod:`mmvheat.compat`
only plugs :func:`read_checkpoint` into mmengine's loaders.

Formats:

* **official classification** (``vHeat_tiny.pth`` ...): weights under
  ``model`` (maybe ``model_ema``), plus the trainer's state, including a yacs
  ``CfgNode`` under ``config`` that is read as an inert stub
  (:class:`InertCfgNode`);
* **mmengine** (mmpretrain / mmdet / mmseg / our converter): ``state_dict``
  and ``meta``; backbone keys under ``backbone.``;
* a **bare** state dict.

Loading always uses ``weights_only=True`` (plus the types mmengine writes),
so no arbitrary object is unpickled; :func:`read_checkpoint` is the one
reader of every path, with one message per kind of bad file.

Strict loading: :func:`check_checkpoint_fits` is the rule for checkpoints
that mmengine's runner loads (test, ``--resume``, ``load_from``), applied by
:class:`mmvheat.engine.StrictLoadHook` before any weight is copied;
``init_cfg`` goes through :func:`load_backbone_weights`, which is strict on
its own.

Key layouts. The authors' files store the stem norms as ``norm1.1.*``
(inside a permute Sequential), the MLP as 1x1 convs ((out, in, 1, 1)
weights) and each stage's downsample as the last item of the stage
(``layers.{i}.{depth_i}.{0,1}.*``). :class:`~mmvheat.models.VHeat` is plain:
``patch_embed.norm1.*``, ``mlp.fc1.weight`` of shape (out, in) and
``downsamples.{i}.{0,1}.*``. :func:`map_legacy_keys` maps the first layout
to the second (safe to run twice); the model runs it on every
``load_state_dict``, so both layouts load strictly, and checkpoints saved by
this version use the plain layout. The official classifier's
``classifier.0`` (LayerNorm) is the backbone's ``outnorm3`` and
``classifier.3`` (Linear) is mmpretrain's ``head.fc``. Frequency value
embeddings (FVEs) are adapted to the target grid by zero-padding at the
bottom and right (what the authors did before their downstream training) or
by bicubic resizing.
"""
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

from mmvheat.download import download_checkpoint, is_url
from mmvheat.ops import fve_grid_for, resize_freq_embed
from mmvheat.version import __version__

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'InertCfgNode',
    'read_checkpoint', 'safe_torch_load', 'mmengine_safe_globals',
    'extract_weights', 'map_legacy_keys', 'official_classifier_keys',
    'backbone_state_dict', 'classifier_state_dict', 'adapt_freq_embeds',
    'load_backbone_weights', 'convert_checkpoint', 'state_dict_misfit',
    'describe_misfit', 'FVE_MODES', 'LOAD_PURPOSES', 'check_checkpoint_fits'
]

UNSAFE_ENV = 'MMVHEAT_UNSAFE_LOAD'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used as asked (missing, unreadable,
    corrupt, or its format, keys or shapes do not fit)."""


class UnsafeCheckpointError(CheckpointError):
    """A well-formed checkpoint that holds objects outside the allowlist
    (only then is ``MMVHEAT_UNSAFE_LOAD=1`` the way out)."""


class InertCfgNode:
    """Stands in for yacs' ``CfgNode`` when reading the authors' checkpoints.

    Their classification files pickle the trainer's config (a ``CfgNode``, a
    dict subclass) under ``config``. Unpickling "creates" this class, which
    hands back a plain ``OrderedDict``: torch's weights-only unpickler fills
    it with the config's items (and its flags as attributes). No yacs import,
    no yacs code run.
    """

    def __new__(cls, *args, **kwargs) -> 'OrderedDict':
        return OrderedDict()


def _numpy_globals() -> List[Any]:
    """numpy's pickle entry points, under every module name they are
    pickled as (numpy 1 ``numpy.core``, numpy 2 ``numpy._core``)."""
    items: List[Any] = [np.ndarray, np.dtype]
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        items += [(fn, f'numpy.core.multiarray.{name}'),
                  (fn, f'numpy._core.multiarray.{name}')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        items += [
            getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')
        ]
    return items


def _history_buffer_getattr() -> Callable:
    """A ``getattr`` that resolves only HistoryBuffer's statistics methods."""
    from mmengine.logging import HistoryBuffer

    default_methods = ('min', 'max', 'current', 'mean')

    def restricted_getattr(obj, name):
        allowed = name in default_methods or (
            name in HistoryBuffer._statistics_methods)
        if obj is HistoryBuffer and allowed:
            return getattr(obj, name)
        raise pickle.UnpicklingError(
            f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint:'
            ' only HistoryBuffer statistics methods are allowed')

    return restricted_getattr


def mmengine_safe_globals() -> List[Any]:
    """The types mmengine puts into its checkpoints, for
    ``torch.serialization.safe_globals``."""
    from mmengine.logging import HistoryBuffer
    return [
        HistoryBuffer, (_history_buffer_getattr(), 'builtins.getattr'),
        (InertCfgNode, 'yacs.config.CfgNode')
    ] + _numpy_globals()


def _pickle_problem(filename: str) -> Optional[str]:
    """Why the pickle inside a torch zip file is malformed, or None.

    Walks the opcodes of ``*/data.pkl`` without executing them
    (``pickletools``): a truncated stream, an unknown opcode or a ``GLOBAL``
    whose names are not Python identifiers mean a corrupt file, not an
    unsafe one.
    """
    import pickletools
    try:
        with zipfile.ZipFile(filename) as archive:
            names = [n for n in archive.namelist()
                     if n.endswith('data.pkl')]
            if not names:
                return 'the zip archive holds no data.pkl'
            data = archive.read(names[0])
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == 'GLOBAL':
                parts = str(arg).split(' ')
                if len(parts) != 2 or not all(
                        part and all(p.isidentifier()
                                     for p in part.split('.'))
                        for part in parts):
                    return f'malformed global {arg!r} in its pickle'
    except Exception as err:  # zipfile.BadZipFile, ValueError, CRC errors
        return f'{type(err).__name__}: {err}'
    return None


def safe_torch_load(filename: str, map_location=None) -> Any:
    """``torch.load`` with ``weights_only=True`` plus mmengine's types.

    Args:
        filename (str): A local checkpoint path.
        map_location: As for ``torch.load``. Defaults to None.

    Returns:
        The loaded object.

    Raises:
        UnsafeCheckpointError: The file is a well-formed checkpoint that
            holds objects outside the allowlist (and ``MMVHEAT_UNSAFE_LOAD=1``
            is not set); the message names them.
        CheckpointError: The allowlisted unpickler failed on a malformed
            pickle (a corrupt file): no advice to load it unsafely.
    """
    if not hasattr(torch.serialization, 'safe_globals'):
        # torch < 2.5: no allowlists; torch.load's default (full unpickling
        # before 2.6) is what mmengine expects.
        return torch.load(filename, map_location=map_location)
    if os.environ.get(UNSAFE_ENV, '') == '1':
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    with torch.serialization.safe_globals(mmengine_safe_globals()):
        try:
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
        except pickle.UnpicklingError as err:
            problem = _pickle_problem(filename)
            if problem is not None:
                raise CheckpointError(
                    f'its pickle is malformed ({problem}): the file is '
                    'corrupt') from err
            found = re.findall(r'GLOBAL ([\w.]+)', str(err))
            raise UnsafeCheckpointError(
                f'Could not load {filename!r} safely (weights_only=True): '
                'it is a well-formed checkpoint, but it holds objects '
                'outside the types mmengine writes'
                + (f' ({", ".join(sorted(set(found)))})' if found else '')
                + f'.\nIf you trust this file, set {UNSAFE_ENV}=1 to load it '
                'with full unpickling.') from err


def official_classifier_keys(weights: dict) -> 'OrderedDict':
    """The authors' classifier keys in mmpretrain's ``ImageClassifier``
    layout: ``classifier.0.*`` (the head LayerNorm) -> ``backbone.outnorm3.*``,
    ``classifier.3.*`` (the Linear) -> ``head.fc.*``, the rest ->
    ``backbone.*``. Other ``classifier.*`` keys are left as they are."""
    out = OrderedDict()
    for key, value in weights.items():
        if key.startswith('classifier.0.'):
            key = 'backbone.outnorm3.' + key[len('classifier.0.'):]
        elif key.startswith('classifier.3.'):
            key = 'head.fc.' + key[len('classifier.3.'):]
        elif not key.startswith('classifier.'):
            key = 'backbone.' + key
        out[key] = value
    return out


FVE_MODES = ('pad', 'bicubic')
_FVE_KEY = re.compile(r'^freq_embed\.(\d+)$')


def _looks_like(path: str) -> str:
    """A hint on what a non-checkpoint file holds, from its first bytes."""
    try:
        with open(path, 'rb') as f:
            head = f.read(64)
    except OSError:
        return ''
    if not head:
        return ' (the file is empty)'
    text = head.decode('utf-8', 'replace')
    if head.lstrip()[:1] in (b'<', b'{') or text.isprintable() or all(
            c.isprintable() or c.isspace() for c in text):
        return f' (it starts with text: {text[:40]!r})'
    return ''


def read_checkpoint(path: str, map_location='cpu',
                    url: Optional[str] = None) -> dict:
    """Load a checkpoint file or URL safely (``weights_only=True``).

    The one reader of every path that opens a checkpoint (tools/test.py,
    ``--resume``, ``load_from``, ``init_cfg``, the converter, the ONNX
    exporter, timm), so a bad file gives the same message everywhere:

    * missing: :class:`FileNotFoundError` naming the path;
    * not torch's zip format (text, an HTML page, a truncated download, a
      file of torch < 1.6): :class:`CheckpointError`;
    * a zip whose pickle or tensor data are corrupt: :class:`CheckpointError`
      (never advising ``MMVHEAT_UNSAFE_LOAD``);
    * a well-formed file holding objects outside the allowlist:
      :class:`UnsafeCheckpointError`, which names them and is the only one
      that mentions ``MMVHEAT_UNSAFE_LOAD``.

    A bad file in the download cache is named with its URL and the command
    that removes it (it is not deleted: the next run downloads it again once
    it is gone).

    Args:
        path (str): A local file, or an ``http(s)://`` URL: downloaded once
            into the cache (see :mod:`mmvheat.download`), then read as a
            local file.
        map_location: As for ``torch.load``. Defaults to 'cpu'.
        url (str, optional): The URL a local ``path`` was downloaded from
            (for messages). Defaults to None.

    Returns:
        dict: The file's top-level dict.
    """
    path = str(path)
    if is_url(path):
        url, path = path, download_checkpoint(path)
    path = osp.expanduser(path)
    origin, fix = '', ''
    if url:
        origin = f' (the cached download of {url})'
        fix = (f'\nRemove it with `rm "{path}"` and run again to download '
               'it afresh.')
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f'could not read {path}{origin} as a torch checkpoint: it is not '
            f"in torch's zip format{_looks_like(path)}; a truncated or "
            'corrupt download, an error page, or a file of torch < 1.6 (re-'
            f'save that with a current torch){fix}')
    try:
        ckpt = safe_torch_load(path, map_location=map_location)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(
            str(err).replace(repr(path), repr(path) + origin, 1)) \
            from err.__cause__
    except Exception as err:  # truncated, corrupt or not a torch file
        kind = '' if isinstance(err, CheckpointError) else \
            f'{type(err).__name__}: '
        first = str(err).splitlines()[0] if str(err) else ''
        raise CheckpointError(
            f'could not read {path}{origin} as a torch checkpoint: '
            f'{kind}{first}{fix}') from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}{origin} holds a '
                              f'{type(ckpt).__name__}, not a checkpoint dict')
    return ckpt


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor)
        for k, v in obj.items())


def extract_weights(ckpt: dict, use_ema: bool = False,
                    source: str = 'checkpoint') -> Tuple[dict, str]:
    """Find the weights in a loaded checkpoint of any known format.

    Args:
        ckpt (dict): What :func:`read_checkpoint` returned.
        use_ema (bool): Take ``model_ema`` of an official file instead of
            ``model``. Defaults to False.
        source (str): Name for messages. Defaults to 'checkpoint'.

    Returns:
        tuple[dict, str]: The state dict (``module.`` prefixes stripped) and
        its format: 'official', 'mmengine' or 'bare'.
    """
    if 'model' in ckpt and _is_state_dict(ckpt['model']):
        fmt = 'official'
        key = 'model'
        if use_ema:
            if 'model_ema' not in ckpt:
                raise CheckpointError(
                    f'{source} has no EMA weights (model_ema); its keys: '
                    f'{sorted(ckpt)}')
            key = 'model_ema'
        weights = ckpt[key]
    elif 'state_dict' in ckpt and _is_state_dict(ckpt['state_dict']):
        fmt, weights = 'mmengine', ckpt['state_dict']
    elif _is_state_dict(ckpt):
        fmt, weights = 'bare', ckpt
    else:
        raise CheckpointError(
            f'{source} is not a vHeat checkpoint in a known format (expected '
            "weights under 'model', 'state_dict', or a bare state dict); its "
            f'top-level keys: {sorted(ckpt)[:20]}')
    if use_ema and fmt != 'official':
        raise CheckpointError(
            f'use_ema needs an official checkpoint with model_ema; {source} '
            f'is in {fmt} format')
    weights = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in weights.items())
    return weights, fmt


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


def _known_missing(key: str) -> bool:
    return re.match(r'^outnorm\d\.(weight|bias)$', key) is not None


def load_backbone_weights(model: torch.nn.Module,
                          checkpoint: str,
                          use_ema: bool = False,
                          fve_mode: str = 'pad',
                          prefix: Optional[str] = None,
                          map_location='cpu') -> dict:
    """Load any vHeat checkpoint into a :class:`VHeat` backbone, checked.

    Everything must load except what is known to be absent: the
    ``outnorm{i}`` a classification file has no weights for. Wrong keys or
    shapes raise :class:`CheckpointError` naming them; nothing is loaded
    partially. FVEs are adapted to the model's grids (``fve_mode``).

    Args:
        model (VHeat): The backbone.
        checkpoint (str): Path to the file, or an http(s) URL.
        use_ema (bool): Official files: take ``model_ema``.
            Defaults to False.
        fve_mode (str): 'pad' or 'bicubic'. Defaults to 'pad'.
        prefix (str, optional): Take only keys under this prefix (e.g.
            'backbone.'); by default ``backbone.`` is used when present.
        map_location: As for ``torch.load``. Defaults to 'cpu'.

    Returns:
        dict: What happened: ``format``, ``loaded`` (count), ``missing``
        (known-absent keys left at their init), ``dropped``, ``adapted``.
    """
    ckpt = read_checkpoint(checkpoint, map_location)
    weights, fmt = extract_weights(ckpt, use_ema, source=str(checkpoint))
    if prefix:
        if not any(k.startswith(prefix) for k in weights):
            raise CheckpointError(f'no key of {checkpoint} starts with '
                                  f'{prefix!r}')
        weights = map_legacy_keys(OrderedDict(
            (k[len(prefix):], v) for k, v in weights.items()
            if k.startswith(prefix)))
        dropped = []
    else:
        weights, dropped = backbone_state_dict(weights)
    adapted = adapt_freq_embeds(
        weights, {i: model.fve_grid(i)
                  for i in range(len(model.freq_embed))}, fve_mode)
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    misfit = state_dict_misfit(own, weights, _known_missing)
    if any(misfit):
        raise CheckpointError(describe_misfit(
            f'{checkpoint} ({fmt} format) does not fit this VHeat backbone '
            f'(arch depths={model.depths}, dims={model.dims}):', *misfit))
    model.load_state_dict(weights, strict=False)
    report = dict(format=fmt, loaded=len(weights), missing=missing,
                  dropped=dropped, adapted=adapted)
    print_log(
        f'VHeat: loaded {len(weights)} tensors from {checkpoint} ({fmt}'
        f'{", EMA" if use_ema else ""}); left at init: {missing or "none"};'
        f' ignored: {len(dropped)} non-backbone keys', logger='current')
    return report


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



LOAD_PURPOSES = ('test', 'resume', 'finetune')
_FVE_SUFFIX = re.compile(r'(^|\.)freq_embed\.\d+$')


def _vheat_prefixes(model: torch.nn.Module) -> List[str]:
    """Key prefixes of the vHeat backbones inside ``model`` ('' for the
    model itself). Found by their interface (``fve_grid``, ``freq_embed``),
    so this module does not import the model."""
    return [
        f'{name}.' if name else ''
        for name, module in model.named_modules()
        if hasattr(module, 'fve_grid') and hasattr(module, 'freq_embed')
    ]


def check_checkpoint_fits(model: torch.nn.Module,
                          checkpoint: dict,
                          purpose: str,
                          source: str = 'checkpoint') -> dict:
    """The strict-loading rule, applied to a loaded mmengine checkpoint
    before its ``state_dict`` goes into ``model``.

    mmengine's runner loads ``load_from``, ``--resume`` and ``tools/test.py``
    checkpoints with ``strict=False`` and only logs what did not fit, so a
    wrong-architecture file would leave random weights and still give a
    metric. :class:`mmvheat.engine.StrictLoadHook` calls this function
    from ``after_load_checkpoint``, before the weights are copied:

    * ``'test'`` and ``'resume'``: every key of the model must be in the file
      with its shape; keys the model does not have are an error inside a
      vHeat backbone, and are ignored (one log line) elsewhere in a test;
    * ``'finetune'`` (``load_from`` when training): the vHeat backbone must
      fit (its FVEs are zero-padded to the model's grid, and the
      ``outnorm{i}`` of a classification file may be absent); the other
      modules' keys may differ (a head with another class count): those
      that do are dropped from the file's state dict and listed in one log
      line.

    Keys in the authors' layout are mapped first (as the model does on
    load), and ``module.`` prefixes are stripped (as mmengine does).

    Args:
        model (nn.Module): The model (not a DDP wrapper).
        checkpoint (dict): What mmengine's ``CheckpointLoader`` returned;
            its ``state_dict`` (or the dict itself) is checked and, for
            fine-tuning, trimmed in place.
        purpose (str): 'test', 'resume' or 'finetune'.
        source (str): The file's name for messages. Defaults to
            'checkpoint'.

    Returns:
        dict: ``backbones`` (the vHeat prefixes), ``ignored`` (keys not
        loaded) and ``adapted`` (FVE changes).

    Raises:
        CheckpointError: The file does not fit; the message names the
            missing, unexpected and mismatched keys.
    """
    if purpose not in LOAD_PURPOSES:
        raise ValueError(f'purpose must be one of {LOAD_PURPOSES}, got '
                         f'{purpose!r}')
    holder = checkpoint
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        holder = checkpoint['state_dict']
    if not isinstance(holder, dict):
        raise CheckpointError(f'{source}: no state dict to load (got a '
                              f'{type(holder).__name__})')
    state = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in holder.items())
    prefixes = _vheat_prefixes(model)
    for prefix in prefixes:
        state = map_legacy_keys(state, prefix)
    own = model.state_dict()
    modules = dict(model.named_modules())

    def in_backbone(key: str) -> bool:
        return any(key.startswith(p) for p in prefixes)

    adapted: List[str] = []
    if purpose == 'finetune':
        for prefix in prefixes:
            backbone = modules[prefix[:-1]] if prefix else model
            adapted += adapt_freq_embeds(
                state, {i: backbone.fve_grid(i)
                        for i in range(len(backbone.freq_embed))},
                'pad', prefix)

    def may_be_missing(key: str) -> bool:
        if not in_backbone(key):
            return purpose == 'finetune'
        rest = next(key[len(p):] for p in prefixes if key.startswith(p))
        return purpose == 'finetune' and _known_missing(rest)

    missing, unexpected, mismatched = state_dict_misfit(
        own, state, may_be_missing)
    ignored = [k for k in own if k not in state]
    if purpose == 'finetune':
        # other modules' weights that do not fit are not loaded
        for key in [k for k in own if k in state and not in_backbone(k)
                    and state[k].shape != own[k].shape]:
            ignored.append(key)
            del state[key]
        mismatched = [m for m in mismatched if in_backbone(m.split(':')[0])]
    allowed_extra = [k for k in unexpected if not in_backbone(k)]
    if purpose != 'resume':
        unexpected = [k for k in unexpected if in_backbone(k)]
        ignored += allowed_extra
    if missing or unexpected or mismatched:
        archs = '; '.join(_arch_of(modules[p[:-1]] if p else model, p)
                          for p in prefixes) or 'no vHeat backbone'
        held = [_arch_in(state, p) for p in prefixes]
        held = '; '.join(h for h in held if h)
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
                    finetune='fine-tuning (load_from)')[purpose]
        raise CheckpointError(describe_misfit(
            f'{source} does not fit this {type(model).__name__} ({archs}); '
            f'refusing to load it for {what}: the results would come from '
            'random or wrong weights.', missing, unexpected, mismatched,
            limit=10) + hint)
    if ignored:
        print_log(
            f'{source}: loaded for {purpose}'
            f'{"; the vHeat backbone fits" if prefixes else ""}; not loaded '
            f'({len(ignored)} keys, left as initialised or ignored as the '
            f'rule for {purpose} allows): {_short(ignored)}',
            logger='current', level=logging.WARNING)
    holder.clear()
    holder.update(state)
    return dict(backbones=prefixes, ignored=ignored, adapted=adapted)


def _arch_of(backbone: torch.nn.Module, prefix: str) -> str:
    depths = list(getattr(backbone, 'depths', []))
    dims = list(getattr(backbone, 'dims', []))
    return f'{prefix[:-1] or "model"}: vHeat depths={depths}, dims={dims}'


def _arch_in(state: dict, prefix: str) -> str:
    """The vHeat arch a state dict holds under ``prefix``, for messages."""
    depths: Dict[int, int] = {}
    dims: Dict[int, int] = {}
    pattern = re.compile(re.escape(prefix) + r'layers\.(\d+)\.(\d+)\.norm1\.')
    for key, value in state.items():
        m = pattern.match(key)
        if m:
            stage = int(m.group(1))
            depths[stage] = max(depths.get(stage, 0), int(m.group(2)) + 1)
        m = re.match(re.escape(prefix) + r'freq_embed\.(\d+)$', key)
        if m and value.dim() == 3:
            dims[int(m.group(1))] = int(value.shape[-1])
    if not depths:
        return ''
    stages = range(max(max(depths), max(dims, default=0)) + 1)
    return (f'depths={[depths.get(i, 0) for i in stages]}, '
            f'dims={[dims.get(i, 0) for i in stages]}')


def _short(keys: List[str], limit: int = 6) -> str:
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def convert_checkpoint(src: str,
                       dst: str,
                       use_ema: bool = False,
                       img_size: Optional[int] = None,
                       backbone_only: bool = False,
                       fve_mode: str = 'pad',
                       publish: bool = False) -> Tuple[str, dict]:
    """Write a slim mmengine checkpoint (``state_dict`` + ``meta``).

    Args:
        src (str): Any vHeat checkpoint (official, mmengine, bare; an
            already-converted file converts to itself), a path or an
            http(s) URL.
        dst (str): Output path.
        use_ema (bool): Official files: take ``model_ema``.
            Defaults to False.
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
    import hashlib
    import os

    ckpt = read_checkpoint(src)
    weights, fmt = extract_weights(ckpt, use_ema, source=str(src))
    if backbone_only:
        state, dropped = backbone_state_dict(weights)
        prefix = ''
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
        converted_from=str(src) if is_url(src) else osp.basename(str(src)),
        source_format=fmt,
        weights='model_ema' if use_ema else 'model',
        layout='backbone' if backbone_only else 'classifier',
        img_size=img_size)
    dst = str(dst)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(dict(state_dict=state, meta=meta), dst)
    if publish:
        with open(dst, 'rb') as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        stem = dst[:-len('.pth')] if dst.endswith('.pth') else dst
        final = f'{stem}-{sha[:8]}.pth'
        os.replace(dst, final)
        dst = final
    return dst, dict(format=fmt, kept=list(state), dropped=dropped,
                     adapted=adapted)
