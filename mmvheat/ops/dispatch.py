"""``heat_filter``: the HCO's DCT-damp-IDCT step, by implementation name."""
import torch

from .autotune import choose_filter
from .filters import FILTER_IMPLS, FILTERS, Bases

HEAT_FILTER_IMPLS = FILTER_IMPLS + ('auto', )
DEFAULT_IMPL = 'matmul'


def heat_filter(u: torch.Tensor,
                factors: torch.Tensor,
                impl: str = DEFAULT_IMPL,
                bases: Bases = None) -> torch.Tensor:
    """The HCO's linear heat-conduction step: DCT, damp, IDCT.

    Args:
        u (torch.Tensor): Channels-last input (B, H, W, C).
        factors (torch.Tensor): Damping per frequency and channel (H, W, C),
            e.g. :func:`~mmvheat.ops.heat_decay` of the conductivity.
        impl (str): 'matmul' (matrix products with the even/odd split of
            the DCT where a fixed rule of the lengths says it pays, see
            :mod:`mmvheat.ops.split_dct`; the default), 'dense' (dense
            products only), 'fft', 'reference' (the authors' ``conv1d``
            form) or 'auto' (opt-in: matmul or fft by a per-machine
            measurement, see :mod:`mmvheat.ops.autotune`).
            Defaults to 'matmul'.
        bases (tuple[torch.Tensor, torch.Tensor], optional): The DCT bases
            ``(D_H, D_W)`` of the map, to share between blocks. Defaults to
            None (built here).

    Returns:
        torch.Tensor: Filtered (B, H, W, C), in ``u``'s dtype.
    """
    if impl == 'auto':
        impl = choose_filter(u)
    fn = FILTERS.get(impl)
    if fn is None:
        raise ValueError(f'unknown heat filter impl {impl!r}; choose one of '
                         f'{HEAT_FILTER_IMPLS}')
    return fn(u, factors, bases)
