"""Plain-torch building blocks of the Heat Conduction Operator."""
from .heat import (clear_cache, dct2d, dct_matrix, decay_map, heat_decay,
                   heat_filter, idct2d, resize_freq_embed)

__all__ = [
    'clear_cache', 'dct2d', 'dct_matrix', 'decay_map', 'heat_decay',
    'heat_filter', 'idct2d',
    'resize_freq_embed'
]
