import os
import re
import sys
import types

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# tests/ holds helpers (the reference oracle) imported by the tests.
sys.path.insert(0, os.path.dirname(__file__))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def randomise(model: torch.nn.Module) -> dict:
    """Give every tensor distinct random values (LN, gammas, biases too)."""
    sd = model.state_dict()
    g = torch.Generator().manual_seed(1)
    for key, value in sd.items():
        noise = torch.randn(value.shape, generator=g) * 0.1
        if key.endswith('norm.weight') or re.search(r'norm\d?(\.1)?\.weight$',
                                                    key) or 'gamma' in key:
            noise = noise + 1
        value.copy_(noise)
    model.load_state_dict(sd)
    return sd


def make_fake_yacs():
    """A module that pickles like yacs' CfgNode (a dict subclass with its
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


def save_official_checkpoint(path, model: dict, model_ema: dict = None,
                             **extra) -> None:
    """Write a file as the authors' trainer does: weights under ``model``
    (and ``model_ema``), its state, and the yacs ``CfgNode`` under
    ``config``, pickled from a stand-in ``yacs.config`` module that is
    removed again afterwards."""
    yacs, config = make_fake_yacs()
    sys.modules['yacs'], sys.modules['yacs.config'] = yacs, config
    try:
        cfg = config.CfgNode({'MODEL': config.CfgNode({'TYPE': 'vheat'}),
                              'DATA': config.CfgNode({'IMG_SIZE': 224})})
        ckpt = dict(model=model, lr_scheduler={'last_epoch': 3},
                    max_accuracy=81.5, scaler={'scale': 65536.0}, epoch=299,
                    config=cfg, **extra)
        if model_ema is not None:
            ckpt['model_ema'] = model_ema
        torch.save(ckpt, path)
    finally:
        del sys.modules['yacs'], sys.modules['yacs.config']
