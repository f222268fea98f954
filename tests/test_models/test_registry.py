"""One VHeat class, reachable from every library's registry."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmvheat.models  # noqa: F401
from mmvheat.models import VHeat
from mmvheat.registry import MODELS as MMVHEAT_MODELS

ARCH = dict(depths=[1, 1, 1, 1], dims=8)


def library_models(lib):
    import importlib
    return importlib.import_module(f'{lib}.registry').MODELS


@pytest.mark.parametrize('lib', ['mmpretrain', 'mmdet', 'mmseg'])
@pytest.mark.parametrize('name', ['mmvheat.VHeat', 'VHeat'])
def test_build_from_each_library(lib, name):
    registry = library_models(lib)
    with DefaultScope.overwrite_default_scope(registry.scope):
        model = registry.build(dict(type=name, arch=ARCH, out_indices=(1, )))
    assert type(model) is VHeat
    assert model(torch.randn(1, 3, 32, 32))[0].shape == (1, 16, 4, 4)


def test_same_class_everywhere():
    """Registered in the mmvheat scope and in mmengine's root MODELS,
    which the libraries' registries search as their parent."""
    from mmengine.registry import MODELS as ROOT
    assert MMVHEAT_MODELS.scope == 'mmvheat'
    assert MMVHEAT_MODELS.get('VHeat') is VHeat
    assert ROOT.module_dict['VHeat'] is VHeat
    for lib in ('mmpretrain', 'mmdet', 'mmseg'):
        registry = library_models(lib)
        assert 'VHeat' not in registry.module_dict
        with DefaultScope.overwrite_default_scope(registry.scope):
            assert registry.get('VHeat') is VHeat


def test_config_custom_imports_builds_detector(tmp_path):
    """A Mask R-CNN-style backbone entry in an mmdet config."""
    from mmdet.registry import MODELS
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        "custom_imports = dict(imports=['mmvheat.models'], "
        "allow_failed_imports=False)\n"
        "backbone = dict(type='mmvheat.VHeat', arch=dict(depths=[1, 1, 1, 1],"
        " dims=8), out_indices=(0, 1, 2, 3))\n"
        "neck = dict(type='FPN', in_channels=[8, 16, 32, 64], "
        "out_channels=16, num_outs=5)\n")
    cfg = Config.fromfile(str(cfg_file))
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = MODELS.build(cfg.backbone)
        neck = MODELS.build(cfg.neck)
    feats = neck(backbone(torch.randn(1, 3, 64, 80)))
    assert [f.shape[-2:] for f in feats][:4] == [(16, 20), (8, 10), (4, 5),
                                                  (2, 3)]
