"""Glue to mmengine: make its checkpoint loading work on torch >= 2.6.

mmengine 0.10.x calls ``torch.load`` without ``weights_only``; since torch
2.6 that means ``weights_only=True``, which refuses the non-tensor objects
mmengine writes into its own checkpoints (message-hub ``HistoryBuffer``s,
numpy arrays and scalars), so ``--resume`` and ``load_from`` fail.

:func:`install_torch_load_fix` points mmengine's loaders for local files and
``http(s)://`` URLs at :func:`mmvheat.checkpoint.read_checkpoint`, which keeps
``weights_only=True`` but allows exactly those types, gives one clear error
for a missing, truncated or corrupt file, and downloads URLs once into
mmvheat's cache (:mod:`mmvheat.download`). The authors' classification files
also get a ``state_dict`` in mmpretrain's layout (their weights are under
``model``, which mmengine does not read).

The loader only reads: whether the checkpoint fits the model is decided by
:class:`mmvheat.engine.StrictLoadHook` (the rule is
:func:`mmvheat.checkpoint.check_checkpoint_fits`), which mmengine's runner
calls with the loaded checkpoint before it copies any weight.

It changes process-wide state (mmengine's loader table), so it is an
explicit step: :mod:`mmvheat.engine` installs it when imported, which our
configs do through ``custom_imports`` and our tools do directly. Importing
:mod:`mmvheat`, :mod:`mmvheat.models` or :mod:`mmvheat.timm` does not.
"""
from typing import Any

import torch
from mmengine.logging import print_log

from mmvheat.checkpoint import (
    extract_weights,
    official_classifier_keys,
    read_checkpoint,
    strip_wrappers,
)

__all__ = ['install_torch_load_fix']


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
    """Give every file a ``state_dict`` without wrapper prefixes, so
    ``load_from``, ``tools/test.py`` and the libraries' hooks (mmpretrain's
    ``EMAHook`` reads ``checkpoint['state_dict']``) take it as it is: the
    authors' classification files get their ``model`` weights in
    mmpretrain's layout, a bare state dict is put under ``state_dict``, and
    ``module.``/``_orig_mod.`` prefixes are stripped."""
    if _is_official_vheat(ckpt):
        weights, _ = extract_weights(ckpt, source=source)
        ckpt['state_dict'] = official_classifier_keys(weights)
        print_log(f'{source}: the authors\' vHeat classification layout; '
                  "reading its 'model' weights as an ImageClassifier's "
                  '(classifier.0 -> backbone.outnorm3, classifier.3 -> '
                  'head.fc)', logger='current')
    elif isinstance(ckpt, dict) and 'state_dict' not in ckpt and all(
            isinstance(v, torch.Tensor) for v in ckpt.values()):
        ckpt = dict(state_dict=strip_wrappers(ckpt))
    elif isinstance(ckpt.get('state_dict'), dict):
        ckpt['state_dict'] = strip_wrappers(ckpt['state_dict'])
    return ckpt


def _load(filename: str, map_location=None) -> Any:
    return _with_state_dict(read_checkpoint(filename, map_location),
                            filename)


_installed = False


def install_torch_load_fix() -> None:
    """Route mmengine's checkpoint loading of local files and ``http(s)://``
    URLs through :func:`mmvheat.checkpoint.read_checkpoint` (resume,
    ``load_from``, ``load_checkpoint``, ``Pretrained`` init). Idempotent."""
    global _installed
    if _installed:
        return
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=_load, force=True)
    _installed = True
