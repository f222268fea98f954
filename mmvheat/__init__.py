"""mmvheat: the vHeat backbone for mmpretrain, mmdetection and
mmsegmentation.

``import mmvheat`` imports nothing else. The names of :mod:`mmvheat.models`
(``mmvheat.VHeat``, ``mmvheat.HeatBlock``,
``mmvheat.HeatConductionOperator``) import that module, and with it torch
and mmengine (never mmdet, mmseg or mmpretrain), when first used.
"""
from .version import __version__

_MODELS = ('VHeat', 'HeatBlock', 'HeatConductionOperator')

__all__ = ['__version__', *_MODELS]


def __getattr__(name: str):
    if name in _MODELS:
        from . import models
        value = getattr(models, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(_MODELS))
