"""``hco_impl='auto'`` (opt-in): matmul or fft, from a measurement.

The default implementation is the fixed ``'matmul'`` (matrix products,
with the even/odd split of :mod:`~mmvheat.ops.split_dct` by its fixed rule
of the lengths, so ``auto`` weighs the fft against that); nothing here runs
unless ``'auto'`` is asked for.

How ``auto`` decides. Once per (device, dtype, autocast) it *calibrates*:
it times both filters on one sample at a few reference sizes
(:data:`REFERENCE_SIDES`, ``CALIBRATION_CHANNELS`` channels) and keeps the
ratio fft time / matmul time per size. In a distributed run every rank
measures and the times are averaged over the ranks (one ``all_reduce``), so
every rank holds the same calibration and makes the same choices. All ranks
reach their first ``auto`` call in the same (first) forward, whatever their
image sizes, so this collective cannot deadlock; it needs every rank to run
the same dtype and autocast setting, as data-parallel training does.

A map of (H, W, C) then takes the fft when the ratio, interpolated in
``log sqrt(H * W)`` between the reference sizes (held constant beyond them),
is below 1. Both filters scale linearly in the batch and the channels, so
neither enters the rule. Choices are kept per (H, W, C, device, dtype,
autocast) in a table of at most :data:`MAX_CHOICES` entries (least recently
used first out). Under ``torch.compile`` tracing, or with
``MMVHEAT_HCO_AUTOTUNE=0``, ``auto`` means ``'matmul'``.
"""
import math
import os
import time
from collections import OrderedDict
from typing import Callable, Dict, List, Tuple

import torch

from .filters import fft_filter, matmul_filter

CANDIDATES: Dict[str, Callable] = {'matmul': matmul_filter, 'fft': fft_filter}
DEFAULT = 'matmul'
REFERENCE_SIDES = (32, 64, 128, 256)
CALIBRATION_CHANNELS = 32
MAX_CHOICES = 256
_calibrations: Dict[tuple, List[float]] = {}
_choices: 'OrderedDict[tuple, str]' = OrderedDict()


def _timing_allowed() -> bool:
    if os.environ.get('MMVHEAT_HCO_AUTOTUNE', '1') == '0':
        return False
    return not torch.compiler.is_compiling()


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
    # A private generator: measuring must not move the global RNG stream.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad(), torch.inference_mode(False):
        u = torch.randn(b, h, w, c, generator=gen).to(device, dtype)
        d = torch.rand(h, w, c, generator=gen).to(device)
        times = {}
        for name, fn in CANDIDATES.items():
            fn(u, d)  # warm-up (allocations, plans)
            times[name] = min(_time_once(fn, u, d) for _ in range(repeats))
    return times


def _average_over_ranks(values: List[float], device: torch.device
                        ) -> List[float]:
    """``values`` averaged over the ranks of a distributed run (as is when
    not distributed)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1):
        return values
    if dist.get_backend() == 'nccl':
        device = torch.device('cuda', torch.cuda.current_device())
    else:
        device = torch.device('cpu')
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def calibration(device: torch.device, dtype: torch.dtype,
                autocast: bool) -> List[float]:
    """fft time / matmul time at each of :data:`REFERENCE_SIDES` (measured
    once per (device, dtype, autocast), averaged over ranks)."""
    key = (device, dtype, autocast)
    ratios = _calibrations.get(key)
    if ratios is None:
        times = []
        for side in REFERENCE_SIDES:
            t = measure((1, side, side, CALIBRATION_CHANNELS), device, dtype)
            times += [t['matmul'], t['fft']]
        times = _average_over_ranks(times, device)
        ratios = [times[i + 1] / max(times[i], 1e-12)
                  for i in range(0, len(times), 2)]
        _calibrations[key] = ratios
    return ratios


def _ratio_at(side: float, ratios: List[float]) -> float:
    """The calibrated ratio at ``side``, interpolated in log side."""
    logs = [math.log(s) for s in REFERENCE_SIDES]
    x = min(max(math.log(side), logs[0]), logs[-1])
    for i in range(len(logs) - 1):
        if x <= logs[i + 1]:
            t = (x - logs[i]) / (logs[i + 1] - logs[i])
            return ratios[i] + t * (ratios[i + 1] - ratios[i])
    return ratios[-1]


def choose_filter(u: torch.Tensor) -> str:
    """The filter ``auto`` uses for ``u``, a (B, H, W, C) map."""
    if not _timing_allowed():
        return DEFAULT
    _, h, w, c = u.shape
    autocast = torch.is_autocast_enabled(u.device.type)
    key = (h, w, c, u.device, u.dtype, autocast)
    choice = _choices.get(key)
    if choice is None:
        ratios = calibration(u.device, u.dtype, autocast)
        choice = 'fft' if _ratio_at(math.sqrt(h * w), ratios) < 1 else 'matmul'
        _choices[key] = choice
        while len(_choices) > MAX_CHOICES:
            _choices.popitem(last=False)
    else:
        _choices.move_to_end(key)
    return choice


def autotune_choices() -> Dict[tuple, str]:
    """What ``auto`` picked so far: (H, W, C, device, dtype, autocast) ->
    implementation."""
    return dict(_choices)


def clear_autotune() -> None:
    """Forget every calibration and choice."""
    _calibrations.clear()
    _choices.clear()
