"""Models of mmvheat. Importing this module (what configs'
``custom_imports=dict(imports=['mmvheat.models'])`` does):

* registers :class:`VHeat` in the ``mmvheat`` scope and, for each of
  mmpretrain, mmdet and mmseg that imports, under the plain name ``VHeat`` in
  its ``MODELS`` (the same class object, no per-library subclass);
* installs the torch>=2.6 checkpoint-loading fix for mmengine
  (:mod:`mmvheat.compat`).
"""
import importlib
import importlib.util
import logging

from mmengine.logging import print_log

from mmvheat.compat import install_torch_load_fix
from .backbones import HeatBlock, HeatConductionOperator, VHeat

__all__ = ['HeatBlock', 'HeatConductionOperator', 'VHeat',
           'register_in_libraries']

LIBRARIES = ('mmpretrain', 'mmdet', 'mmseg')


def register_in_libraries() -> dict:
    """Register ``VHeat`` under its plain name in each importable library.

    Returns:
        dict: library name -> True when registered, or the reason it was not.
    """
    result = {}
    for lib in LIBRARIES:
        if importlib.util.find_spec(lib) is None:
            result[lib] = 'not installed'
            continue
        try:
            registry = importlib.import_module(f'{lib}.registry').MODELS
            if registry.module_dict.get('VHeat') is not VHeat:
                registry.register_module(name='VHeat', module=VHeat,
                                         force=True)
            result[lib] = True
        except Exception as err:  # mmdet/mmseg assert on mmcv's version
            result[lib] = f'{type(err).__name__}: {err}'
            print_log(f'mmvheat: VHeat not registered in {lib} ({err})',
                      logger='current', level=logging.DEBUG)
    return result


install_torch_load_fix()
register_in_libraries()
