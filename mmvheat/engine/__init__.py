"""mmengine integration: hooks (RNG states across resume, strict loading),
and the torch>=2.6 checkpoint-loading fix.

Importing this module installs :func:`mmvheat.compat.install_torch_load_fix`
(mmengine's loaders for local files and URLs read through
:func:`mmvheat.checkpoint.read_checkpoint`). Our configs import it through
``custom_imports=dict(imports=['mmvheat.models', 'mmvheat.engine'])``, so the
fix also reaches mmdet's, mmseg's and mmpretrain's own tools; our
``tools/train.py`` and ``tools/test.py`` import it too.
"""
from mmvheat.compat import install_torch_load_fix
from .rng_state_hook import RNGStateHook
from .strict_load_hook import StrictLoadHook

__all__ = ['RNGStateHook', 'StrictLoadHook', 'install_torch_load_fix']

install_torch_load_fix()
