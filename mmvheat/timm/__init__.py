"""vHeat in timm: ``import mmvheat.timm`` registers ``vheat_tiny``,
``vheat_small`` and ``vheat_base`` in timm's model registry.

The models are :class:`mmvheat.models.VHeat` with timm's classifier head
(:class:`VHeatTimm`), with the timm >= 1.0 model API (``features_only``,
``forward_intermediates``, ``reset_classifier``, ``pretrained_cfg`` ...).
Pretrained weights are the authors' ImageNet-1k files, read by
:mod:`mmvheat.checkpoint` (no yacs needed, FVEs resized to ``img_size``)::

    import timm
    import mmvheat.timm  # noqa: F401
    model = timm.create_model(
        'vheat_tiny', pretrained=True,
        pretrained_cfg_overlay=dict(file='vHeat_tiny.pth'))

This package needs timm; the core (``import mmvheat``, ``mmvheat.models``)
never imports it.
"""
try:
    import timm  # noqa: F401
except ImportError as err:  # pragma: no cover - message only
    raise ImportError(
        'mmvheat.timm needs timm (tested with timm==1.0.31): '
        '`pip install timm==1.0.31`, or use mmvheat.models.VHeat directly'
    ) from err

from .vheat import (
    VHeatTimm,
    checkpoint_filter_fn,
    vheat_base,
    vheat_model_names,
    vheat_small,
    vheat_tiny,
)

__all__ = [
    'VHeatTimm', 'checkpoint_filter_fn', 'vheat_model_names', 'vheat_tiny',
    'vheat_small', 'vheat_base'
]
