"""Plain-torch building blocks of the Heat Conduction Operator."""
from .filters import (
    DEFAULT_IMPL,
    HCO_IMPLS,
    dense_filter,
    fft_filter,
    heat_filter,
    split_dct_filter,
)
from .fve import fve_grid_for, resize_freq_embed
from .heat import (
    dct2d,
    dct_bases,
    dct_matrix,
    decay_map,
    heat_decay,
    idct2d,
    separable_transform,
)
from .split_dct import SPLIT_MIN_LENGTH, split_depth, split_filter

__all__ = [
    'DEFAULT_IMPL', 'HCO_IMPLS', 'SPLIT_MIN_LENGTH', 'dct2d', 'dct_bases',
    'dct_matrix', 'decay_map', 'dense_filter', 'fft_filter', 'fve_grid_for',
    'heat_decay', 'heat_filter', 'idct2d', 'resize_freq_embed',
    'separable_transform', 'split_dct_filter', 'split_depth', 'split_filter'
]
