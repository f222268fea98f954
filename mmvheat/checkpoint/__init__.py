"""vHeat weight files: reading, layouts, fitting.

* :mod:`.reading`: :func:`read_checkpoint`, the one safe reader of every
  file users have (torch's zip format with ``weights_only=True``,
  ``.safetensors``), and :func:`save_weights`;
* :mod:`.layouts`: which weights a file holds (:func:`select_weights`,
  EMA included), wrapper prefixes (:func:`strip_wrappers`) and key layouts
  (the authors', mmpretrain's, a bare backbone's);
* :mod:`.fitting`: :func:`load_weights` and :func:`fit_weights`, the one
  loading function every path uses, with the rules of what a load is for.

Conversion to mmvheat's format is :func:`mmvheat.convert.convert_checkpoint`.
"""
from .fitting import (
    FVE_MODES,
    LOAD_PURPOSES,
    adapt_freq_embeds,
    check_checkpoint_fits,
    describe_misfit,
    fit_weights,
    load_backbone_weights,
    load_weights,
    state_dict_misfit,
)
from .layouts import (
    arch_in_weights,
    backbone_state_dict,
    classifier_state_dict,
    extract_weights,
    is_vheat_weights,
    map_legacy_keys,
    official_classifier_keys,
    select_weights,
    strip_wrappers,
    to_model_layout,
    vheat_prefixes,
)
from .reading import (
    UNSAFE_ENV,
    CheckpointError,
    InertCfgNode,
    UnsafeCheckpointError,
    is_safetensors,
    mmengine_safe_globals,
    read_checkpoint,
    safe_torch_load,
    save_weights,
)

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'InertCfgNode', 'UNSAFE_ENV',
    'read_checkpoint', 'safe_torch_load', 'mmengine_safe_globals',
    'is_safetensors', 'save_weights', 'select_weights', 'extract_weights',
    'strip_wrappers', 'map_legacy_keys', 'official_classifier_keys',
    'backbone_state_dict', 'classifier_state_dict', 'to_model_layout',
    'vheat_prefixes', 'arch_in_weights', 'is_vheat_weights', 'FVE_MODES',
    'LOAD_PURPOSES', 'adapt_freq_embeds', 'state_dict_misfit',
    'describe_misfit', 'fit_weights', 'load_weights', 'load_backbone_weights',
    'check_checkpoint_fits'
]
