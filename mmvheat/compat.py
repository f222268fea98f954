"""Make mmengine 0.10.x checkpoints load on torch >= 2.6.

mmengine calls ``torch.load`` without ``weights_only``; since torch 2.6 that
means ``weights_only=True``, which refuses the non-tensor objects mmengine
writes into its own checkpoints (the message hub's ``HistoryBuffer``s, numpy
arrays and scalars, and a ``getattr(HistoryBuffer, 'min')``-style reference
to its statistics methods). Resuming a run then fails.

:func:`install_torch_load_fix` replaces mmengine's loader for local files
with one that keeps ``weights_only=True`` but allows exactly those types (and
a ``getattr`` that only resolves HistoryBuffer's statistics methods), and
reads the yacs ``CfgNode`` in the authors' classification files as a plain
dict (:class:`InertCfgNode`); ``http(s)://`` checkpoints take the same
loader after a cached download (:mod:`mmvheat.download`). Nothing is changed
for other callers of ``torch.load``. Files that still need full
unpickling are refused with an explanation; set ``MMVHEAT_UNSAFE_LOAD=1``
only for files you trust.
"""
import os
import pickle
from collections import OrderedDict
from typing import Any, Callable, List

import numpy as np
import torch
from mmengine.logging import print_log

from mmvheat.download import download_checkpoint

__all__ = [
    'InertCfgNode', 'UnsafeCheckpointError', 'install_torch_load_fix',
    'mmengine_safe_globals', 'official_classifier_keys', 'safe_torch_load'
]

UNSAFE_ENV = 'MMVHEAT_UNSAFE_LOAD'


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects outside the allowlist."""


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


def safe_torch_load(filename: str, map_location=None) -> Any:
    """``torch.load`` with ``weights_only=True`` plus mmengine's types.

    Args:
        filename (str): A local checkpoint path.
        map_location: As for ``torch.load``. Defaults to None.

    Returns:
        The loaded object.

    Raises:
        UnsafeCheckpointError: The file holds objects outside the allowlist
            (and ``MMVHEAT_UNSAFE_LOAD=1`` is not set); the message names them.
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
            raise UnsafeCheckpointError(
                f'Could not load {filename!r} safely (weights_only=True): '
                f'it holds objects outside the types mmengine writes.\n'
                f'{str(err).splitlines()[0]}\nIf you trust this file, set '
                f'{UNSAFE_ENV}=1 to load it with full unpickling.') from err


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


def _is_official_vheat(ckpt: Any) -> bool:
    """An authors' vHeat classification file: weights under ``model``, no
    ``state_dict``, the vHeat stem and head keys."""
    if not isinstance(ckpt, dict) or 'state_dict' in ckpt:
        return False
    model = ckpt.get('model')
    return isinstance(model, dict) and {
        'patch_embed.conv1.weight', 'freq_embed.0', 'classifier.3.weight'
    } <= set(model)


def _with_state_dict(ckpt: Any, source: str) -> Any:
    """mmengine reads weights from ``state_dict`` only; give the authors'
    classification files one (mmpretrain layout), so ``load_from``,
    ``tools/test.py`` and mmpretrain's tools take them as they are."""
    if _is_official_vheat(ckpt):
        ckpt['state_dict'] = official_classifier_keys(ckpt['model'])
        print_log(f'{source}: the authors\' vHeat classification layout; '
                  "reading its 'model' weights as an ImageClassifier's "
                  '(classifier.0 -> backbone.outnorm3, classifier.3 -> '
                  'head.fc)', logger='current')
    return ckpt


def _load_from_local(filename: str, map_location=None) -> Any:
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return _with_state_dict(
        safe_torch_load(filename, map_location=map_location), filename)


def _load_from_url(filename: str, map_location=None) -> Any:
    return _with_state_dict(
        safe_torch_load(download_checkpoint(filename),
                        map_location=map_location), filename)


_installed = False


def install_torch_load_fix() -> None:
    """Route mmengine's checkpoint loading of local files and of
    ``http(s)://`` URLs through :func:`safe_torch_load` (resume,
    ``load_from``, ``load_checkpoint``, ``Pretrained`` init). URLs are
    downloaded once into mmvheat's cache (:mod:`mmvheat.download`) instead
    of by mmengine's ``load_url``, which unpickles with torch's defaults.
    The authors' classification files also get a ``state_dict`` in
    mmpretrain's layout (their weights are under ``model``, which mmengine
    does not read). Idempotent; called when ``mmvheat.models`` is
    imported."""
    global _installed
    if _installed:
        return
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_from_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=_load_from_url, force=True)
    _installed = True
