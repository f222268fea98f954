"""``hco_impl='auto'``: pick the faster heat filter by measuring it.

The first time a (B, H, W, C, device, dtype) is seen, ``matmul`` and ``fft``
each run a few times on one sample of that shape (both scale linearly with
the batch; one sample keeps the measurement's memory small) and the faster
is kept for that key (like ``cudnn.benchmark``). Both are exact and work for every
dtype and device (the FFT computes half-precision inputs in float32), so the
choice only moves speed. Under ``torch.compile`` tracing, or when timing is
switched off with ``MMVHEAT_HCO_AUTOTUNE=0``, keys not yet measured use
``matmul``, the measured winner at every CPU size we tried.
"""
import os
import time
from typing import Callable, Dict, Tuple

import torch

from .filters import fft_filter, matmul_filter

CANDIDATES: Dict[str, Callable] = {'matmul': matmul_filter, 'fft': fft_filter}
DEFAULT = 'matmul'
_choices: Dict[tuple, str] = {}


def _timing_allowed() -> bool:
    if os.environ.get('MMVHEAT_HCO_AUTOTUNE', '1') == '0':
        return False
    compiling = getattr(torch.compiler, 'is_compiling', lambda: False)
    return not compiling()


def _time_once(fn: Callable, u: torch.Tensor, d: torch.Tensor) -> float:
    sync = u.device.type == 'cuda'
    if sync:
        torch.cuda.synchronize(u.device)
    start = time.perf_counter()
    fn(u, d)
    if sync:
        torch.cuda.synchronize(u.device)
    return time.perf_counter() - start


def measure(shape: Tuple[int, int, int, int], device: torch.device,
            dtype: torch.dtype, repeats: int = 3) -> Dict[str, float]:
    """Best-of-``repeats`` seconds of each candidate on random data."""
    b, h, w, c = shape
    # A private generator: measuring must not move the global RNG stream
    # (a resumed run measures at another point than the original one).
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad(), torch.inference_mode(False):
        u = torch.randn(b, h, w, c, generator=gen).to(device, dtype)
        d = torch.rand(h, w, c, generator=gen).to(device)
        times = {}
        for name, fn in CANDIDATES.items():
            fn(u, d)  # warm-up (allocations, plans)
            times[name] = min(
                _time_once(fn, u, d) for _ in range(repeats))
    return times


def choose_filter(u: torch.Tensor) -> str:
    """The filter ``auto`` uses for ``u`` (measured on first sight)."""
    key = (tuple(u.shape), u.device, u.dtype,
           torch.is_autocast_enabled(u.device.type))
    choice = _choices.get(key)
    if choice is None:
        if not _timing_allowed():
            return DEFAULT
        times = measure((1, ) + tuple(u.shape[1:]), u.device, u.dtype)
        choice = min(times, key=times.get)
        _choices[key] = choice
    return choice


def autotune_choices() -> Dict[tuple, str]:
    """What ``auto`` picked so far: (shape, device, dtype, autocast) ->
    implementation."""
    return dict(_choices)


def clear_autotune() -> None:
    """Forget every measured choice."""
    _choices.clear()
