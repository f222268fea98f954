"""Plain-torch building blocks of the Heat Conduction Operator."""
from .autograd import needs_autograd
from .autotune import autotune_choices, clear_autotune
from .dispatch import DEFAULT_IMPL, HEAT_FILTER_IMPLS, heat_filter
from .filters import (FILTER_IMPLS, dense_filter, fft_filter, matmul_filter,
                      reference_filter)
from .fve import fve_grid_for, resize_freq_embed
from .heat import (dct2d, dct_bases, dct_matrix, decay_map, heat_decay,
                   idct2d, separable_transform)
from .split_dct import SPLIT_MIN_LENGTH, split_depth, split_filter

__all__ = [
    'DEFAULT_IMPL', 'FILTER_IMPLS', 'HEAT_FILTER_IMPLS', 'SPLIT_MIN_LENGTH',
    'autotune_choices', 'clear_autotune', 'dct2d', 'dct_bases', 'dct_matrix',
    'decay_map', 'dense_filter', 'fft_filter', 'fve_grid_for', 'heat_decay',
    'heat_filter', 'idct2d',
    'matmul_filter', 'needs_autograd', 'reference_filter',
    'resize_freq_embed', 'separable_transform', 'split_depth', 'split_filter'
]
