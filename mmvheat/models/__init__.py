"""Models of mmvheat. Importing this module (what configs'
``custom_imports=dict(imports=['mmvheat.models'])`` does) registers
:class:`VHeat` in the ``mmvheat`` scope (``type='mmvheat.VHeat'``) and under
its plain name in mmengine's root ``MODELS``. mmpretrain's, mmdet's and
mmseg's ``MODELS`` are children of that root and look a name up in their
parents, so ``type='VHeat'`` builds inside their configs too, without this
module importing any of them.
"""
from mmengine.registry import MODELS as ROOT_MODELS

from .backbones import HeatBlock, HeatConductionOperator, VHeat

__all__ = ['HeatBlock', 'HeatConductionOperator', 'VHeat']

if ROOT_MODELS.module_dict.get('VHeat') is not VHeat:
    ROOT_MODELS.register_module(name='VHeat', module=VHeat, force=True)
