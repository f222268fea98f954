"""mmvheat's registry scope.

The registries are children of mmengine's root ones, so a config anywhere
can name ``type='mmvheat.VHeat'`` or ``type='mmvheat.RNGStateHook'``:
mmengine finds the ``mmvheat`` scope, imports this module and then the
registry's ``locations`` (which register the classes).
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmvheat',
    locations=['mmvheat.models'])

HOOKS = Registry(
    'hook',
    parent=MMENGINE_HOOKS,
    scope='mmvheat',
    locations=['mmvheat.engine'])
