"""mmvheat's registry scope.

``MODELS`` is a child of mmengine's root registry, so a config anywhere can
name ``type='mmvheat.VHeat'``: mmengine finds the ``mmvheat`` scope, imports
this module and then ``locations`` (which registers the models).
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmvheat',
    locations=['mmvheat.models'])
