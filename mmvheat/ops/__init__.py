"""Plain-torch building blocks of the Heat Conduction Operator."""
from .autograd import needs_autograd
from .autotune import autotune_choices, clear_autotune
from .filters import (FILTER_IMPLS, fft_filter, heat_filter, matmul_filter,
                      reference_filter)
from .heat import (clear_cache, dct2d, dct_matrix, decay_map, heat_decay,
                   idct2d, resize_freq_embed)

__all__ = [
    'FILTER_IMPLS', 'autotune_choices', 'clear_autotune', 'clear_cache',
    'dct2d', 'dct_matrix', 'decay_map', 'fft_filter', 'heat_decay',
    'heat_filter', 'idct2d', 'matmul_filter', 'needs_autograd',
    'reference_filter',
    'resize_freq_embed'
]
