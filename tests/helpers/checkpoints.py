"""Checkpoint files in the formats the authors released: classification
files pickled with their trainer's yacs config, and downstream (detection,
segmentation) files."""
import sys
import types

import torch


def _fake_yacs():
    """Modules that pickle like yacs' CfgNode (a dict subclass with its
    flags in __dict__, including a set)."""
    yacs = types.ModuleType('yacs')
    config = types.ModuleType('yacs.config')

    class CfgNode(dict):

        def __init__(self, init=None):
            super().__init__(init or {})
            self.__dict__['__immutable__'] = False
            self.__dict__['__deprecated_keys__'] = set()
            self.__dict__['__new_allowed__'] = False

    CfgNode.__module__ = 'yacs.config'
    CfgNode.__qualname__ = 'CfgNode'
    config.CfgNode = CfgNode
    yacs.config = config
    return yacs, config


def save_official_checkpoint(path, **entries) -> None:
    """``torch.save`` a file in the layout of the authors' classification
    checkpoints: ``entries`` (``model=state_dict``, ``model_ema``, ...) plus
    the trainer's yacs ``CfgNode`` under ``config``, pickled from a stand-in
    ``yacs.config`` module that is removed again before anything loads it."""
    yacs, config = _fake_yacs()
    sys.modules['yacs'], sys.modules['yacs.config'] = yacs, config
    try:
        cfg = config.CfgNode({'MODEL': config.CfgNode({'TYPE': 'vheat'}),
                              'DATA': config.CfgNode({'IMG_SIZE': 224})})
        torch.save(dict(entries, config=cfg), path)
    finally:
        del sys.modules['yacs'], sys.modules['yacs.config']


def save_released_checkpoint(lib_config: str, img_size: int, path):
    """Write a file in the released downstream format to ``path``: the
    authors' backbone keys (with outnorm{i}) under ``backbone.``, plus the
    library's own neck and head keys taken from the model of
    ``lib_config`` (its Swin model of the same task). Returns ``path``."""
    import importlib

    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmvheat.analysis.reference_vheat import ReferenceVHeat
    cfg = Config.fromfile(lib_config)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        swin_model = registry.MODELS.build(cfg.model)
    state = {k: v for k, v in swin_model.state_dict().items()
             if not k.startswith('backbone.')}
    ref = ReferenceVHeat([2, 2, 6, 2], [96, 192, 384, 768], False, None,
                         img_size=img_size, outnorm=True)
    state.update({f'backbone.{k}': v for k, v in ref.state_dict().items()})
    torch.save(dict(state_dict=state, meta=dict(epoch=12)), path)
    return path
