"""Seeing the heat: what vHeat's Heat Conduction Operators do.

* :mod:`.heat` - impulse responses of the heat-conduction filter and the
  learned conductivity ``k`` of chosen blocks;
* :mod:`.features` - stage feature maps (norm, PCA) and effective receptive
  fields, also for mmpretrain's Swin;
* :mod:`.image` / :mod:`.model` - the image and the backbone of a config;
* :mod:`.plots` - the matplotlib figures (used by
  ``tools/analysis_tools/visualize_heat.py``).
"""
from .features import (
    area_ratio,
    build_swin,
    channel_norm,
    effective_receptive_field,
    output_cell,
    pca_rgb,
    stage_features,
)
from .heat import (
    block_impulse_response,
    conductivity,
    default_block_ids,
    grid_points,
    heat_kernel,
    impulse_response,
    parse_block_ids,
    reduce_channels,
    spatial_spread,
)
from .image import image_to_tensor, load_image, normalization
from .model import build_vheat_backbone
from .plots import (
    plot_conductivity,
    plot_erf,
    plot_features,
    plot_impulse_responses,
    save_figure,
)

__all__ = [
    'area_ratio', 'block_impulse_response', 'build_swin',
    'build_vheat_backbone', 'channel_norm', 'conductivity',
    'default_block_ids', 'effective_receptive_field', 'grid_points',
    'heat_kernel', 'image_to_tensor', 'impulse_response', 'load_image',
    'normalization', 'output_cell', 'parse_block_ids', 'pca_rgb',
    'plot_conductivity', 'plot_erf', 'plot_features', 'plot_impulse_responses',
    'reduce_channels', 'save_figure', 'spatial_spread', 'stage_features'
]
