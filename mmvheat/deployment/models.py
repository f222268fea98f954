"""vHeat models of a config, and the graphs exported from them.

:func:`build_deploy_model` builds a config's model (mmpretrain classifier,
mmseg segmentor or mmdet detector with a vHeat backbone) in eval mode and
loads a checkpoint, checked key by key. :func:`export_graph` wraps it into
the module that is exported: images in, the task's tensors out.
"""
import copy
import logging
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log

from mmvheat.checkpoint import load_weights
from .task_graph import DeployError, Normalize, _TaskGraph, preprocess_of

__all__ = ['DeployError', 'TASKS', 'task_of', 'build_deploy_model',
           'load_model_weights', 'Normalize', 'export_graph',
           'preprocess_of', 'reference_outputs']

# task name -> (the library's scope, what the exported graph returns)
TASKS = {
    'classifier': ('mmpretrain', 'logits (B, num_classes)'),
    'segmentor': ('mmseg', 'whole-image logits (B, num_classes, H, W)'),
    'detector': ('mmdet', 'dets (1, N, 5), labels (1, N), masks '
                 '(1, N, 28, 28): the whole Mask R-CNN'),
}


def task_of(cfg: Config) -> str:
    """'classifier', 'segmentor' or 'detector' from the config's
    ``default_scope``; raises :class:`DeployError` for anything else or a
    backbone that is not vHeat."""
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    kind = str(backbone.get('type', ''))
    if not kind.split('.')[-1] == 'VHeat':
        raise DeployError(
            f'model.backbone is {kind or "missing"!r}: this tool exports '
            'vHeat models only (model.backbone.type mmvheat.VHeat or VHeat). '
            'For other backbones use mmdeploy or torch.onnx.export directly.')
    scope = cfg.get('default_scope')
    for task, (lib, _) in TASKS.items():
        if scope == lib:
            return task
    raise DeployError(
        f'default_scope {scope!r} is not one of mmpretrain (classifier), '
        'mmseg (segmentor) or mmdet (detector)')


def _merge_missing_preprocessor(cfg: Config) -> dict:
    model_cfg = copy.deepcopy(cfg.model)
    if 'data_preprocessor' not in model_cfg and cfg.get('data_preprocessor'):
        model_cfg['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
    return model_cfg


def build_deploy_model(cfg: Config,
                       checkpoint: Optional[str] = None) -> nn.Module:
    """The config's model on the CPU in eval mode, with ``checkpoint``.

    SyncBN layers become BN (single process). The backbone's ``init_cfg``
    is ignored: weights come from ``checkpoint`` (see
    :func:`load_model_weights`) or stay random, with a warning.

    Args:
        cfg (Config): A config of one of :data:`TASKS`.
        checkpoint (str, optional): Weights of the whole model, or the
            official vHeat classification file for a classifier.

    Returns:
        nn.Module: The model (``model.task`` names its task).
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope
    task = task_of(cfg)
    import mmvheat.models  # noqa: F401  (registers VHeat)
    init_default_scope(cfg.default_scope)
    model_cfg = _merge_missing_preprocessor(cfg)
    model_cfg['backbone'].pop('init_cfg', None)
    model = revert_sync_batchnorm(MODELS.build(model_cfg))
    if checkpoint is None:
        print_log('no checkpoint given: the exported model is RANDOMLY '
                  'INITIALISED', logger='current', level=logging.WARNING)
    else:
        load_model_weights(model, checkpoint)
    model.task = task
    return model.eval()


def load_model_weights(model: nn.Module, checkpoint: str) -> None:
    """Load a whole-model checkpoint for inference, checked
    (:func:`mmvheat.checkpoint.load_weights` under the test rule): every
    key of ``model`` must be in the file with its shape, and nothing else
    inside the backbone. Any format users have loads (see
    :func:`mmvheat.checkpoint.select_weights`).

    Raises:
        CheckpointError: A missing, unreadable or mismatched file, naming the
            keys.
    """
    load_weights(model, checkpoint, 'test')


def export_graph(model: nn.Module,
                 fixed_size: Optional[Sequence[int]] = None,
                 normalize: bool = False,
                 backbone_only: bool = False,
                 features_only: bool = False) -> nn.Module:
    """The module exported for ``model`` (from :func:`build_deploy_model`).

    * classifier: images -> logits (B, num_classes) (``head(neck(...))``,
      as mmpretrain's ``mode='tensor'``);
    * segmentor: images -> whole-image logits (B, num_classes, H, W): the
      decode head's output resized bilinearly to the input, as mmseg's
      whole-mode inference before the argmax;
    * detector (Mask R-CNN): (image (1, 3, H, W), img_shape (2, )) ->
      dets, labels, masks: the whole test path, see
      :class:`~.detection.MaskRCNNGraph`;
    * detector with ``features_only``: images -> the neck's feature maps
      (FPN levels), task ``'neck'``;
    * ``backbone_only``: images -> the vHeat backbone's feature maps.

    Args:
        model (nn.Module): The model, in eval mode.
        fixed_size (tuple[int, int], optional): Bake the decay tables for
            this input size (see :func:`exportable_backbone`). Defaults to
            None.
        normalize (bool): Put the data preprocessor's mean/std (and BGR ->
            RGB flip) in the graph, which then takes raw pixels. Defaults
            to False: the graph takes normalised RGB images, as the model's
            own forward does after its data preprocessor.
        backbone_only (bool): Export the backbone alone. Defaults to False.
        features_only (bool): For a detector, stop at the neck. Defaults to
            False.
    """
    if model.task == 'detector' and not (backbone_only or features_only):
        from .detection import MaskRCNNGraph
        return MaskRCNNGraph(model, fixed_size, normalize).eval()
    return _TaskGraph(model, fixed_size, normalize, backbone_only).eval()


def reference_outputs(model: nn.Module, task: str,
                      images: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """What the PyTorch model itself computes for what the graph of
    ``task`` returns (``images`` already normalised): the reference of
    ``--verify``."""
    with torch.no_grad():
        if task == 'backbone':
            return tuple(model.backbone(images))
        if task == 'detector':
            raise DeployError('the whole-detector graph has no tensor '
                              'reference: compare detections instead '
                              '(mmvheat.deployment.compare_detections)')
        if task == 'classifier':
            return (model(images, mode='tensor'), )
        if task == 'segmentor':
            metas = [dict(img_shape=tuple(images.shape[2:]))] * len(images)
            return (model.encode_decode(images, metas), )
        return tuple(model.extract_feat(images))
