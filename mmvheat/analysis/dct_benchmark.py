"""Building blocks of ``tools/analysis_tools/benchmark_dct.py``: the heat
filter's implementations, and vHeat models that only differ in
``hco_impl`` (same weights), timed in one process with interleaved
repeats.

A *case* is something to time under each implementation: a filter on one
(H, W) map (:func:`filter_case`) or a vHeat step (:func:`model_case`). Each
repeat times every case under every implementation (the order rotated from
repeat to repeat) as the median of ``runs`` calls after a warm-up; the
result per case and implementation is the median over the repeats, and each
repeat's ratios are kept so their spread can be reported.
"""
import statistics
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from mmvheat.models import VHeat
from mmvheat.ops import dct_bases, dense_filter, split_filter
from mmvheat.ops.filters import FILTERS
from mmvheat.ops.split_dct import split_depth
from .classifier import Classifier

MODEL_CASES = ('deploy224', 'deploy1024', 'det800x1216_tables',
               'det800x1216', 'train512')
"""* ``deploy224``: vHeat-T deployed, 8 images of 224x224 (no map is long
  enough to split: the default is the dense path there).
* ``deploy1024``: vHeat-T deployed, a 1024x1024 image (batch 1).
* ``det800x1216_tables``: vHeat-T built for 800x1216 (``img_size``, so its
  decay tables are reused), four outputs, one image without autograd.
* ``det800x1216``: vHeat-T with ``img_size=512`` (mmdet's configs), so the
  damping factors are computed in every forward, as in training; four
  outputs, one image without autograd (what mmdet's test loop runs).
* ``train512``: a training step of vHeat-T with a linear head at 512x512,
  batch 2: forward, cross-entropy, backward, AdamW step."""


def _median_time(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _filter_inputs(size: Tuple[int, int], channels: int, batch: int,
                   seed: int) -> tuple:
    """A random (batch, H, W, channels) map, damping factors and bases."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    return (torch.randn(batch, h, w, channels, generator=gen),
            torch.rand(h, w, channels, generator=gen), dct_bases(h, w))


def _caller(fn: Callable, u: torch.Tensor, factors: torch.Tensor,
            bases: tuple, grad: bool) -> Callable[[], object]:
    """``fn(u, factors, bases)`` without autograd, or with ``grad`` its
    forward and backward (gradients of ``u`` and ``factors``) for a fixed
    random output gradient."""
    if not grad:
        def call():
            with torch.inference_mode():
                return fn(u, factors, bases)
        return call
    out_grad = torch.randn(u.shape, generator=torch.Generator().manual_seed(1))

    def call_with_grad():
        ui = u.detach().requires_grad_()
        fi = factors.detach().requires_grad_()
        fn(ui, fi, bases).backward(out_grad)
        return ui.grad
    return call_with_grad


def filter_case(size: Tuple[int, int], channels: int = 96, batch: int = 1,
                seed: int = 0, compile: bool = False, grad: bool = False
                ) -> Callable[[str], Callable[[], object]]:
    """A case timing ``FILTERS[impl]`` on one (batch, H, W, channels) map,
    its bases shared as a stage shares them, without autograd (with
    ``grad``: forward and backward); with ``compile``,
    ``torch.compile(fullgraph=True, dynamic=False)`` of it (compiled once
    per case and implementation, in the warm-up)."""
    u, factors, bases = _filter_inputs(size, channels, batch, seed)
    compiled = {}

    def make(impl: str) -> Callable[[], object]:
        fn = FILTERS[impl]
        if compile:
            if impl not in compiled:
                compiled[impl] = torch.compile(
                    fn, fullgraph=True, dynamic=False)
            fn = compiled[impl]
        return _caller(fn, u, factors, bases, grad)
    return make


def depth_case(size: Tuple[int, int], channels: int = 96, batch: int = 1,
               seed: int = 0, grad: bool = False
               ) -> Callable[[str], Callable[[], object]]:
    """A case timing the filter with a given number of even/odd splits along
    both axes: implementation names ``'split0'`` (the dense products),
    ``'split1'``, ``'split2'``, ... (the measurement behind
    :data:`~mmvheat.ops.split_dct.SPLIT_MIN_LENGTH`); ``grad`` as in
    :func:`filter_case`."""
    u, factors, bases = _filter_inputs(size, channels, batch, seed)

    def make(name: str) -> Callable[[], object]:
        depth = int(name[len('split'):])
        depths = tuple(split_depth(n, min_length=2, max_depth=depth)
                       for n in size)

        def fn(u, factors, bases):
            if depth == 0:
                return dense_filter(u, factors, bases)
            return split_filter(u, factors, bases, depths)
        return _caller(fn, u, factors, bases, grad)
    return make


def _vheat_per_impl(**kwargs) -> Callable[[str], VHeat]:
    """``get(impl)``: a vHeat-T built with ``hco_impl=impl`` (one per
    impl, made on first use), all with the same weights."""
    torch.manual_seed(0)
    weights = VHeat('tiny', **kwargs).state_dict()
    models: Dict[str, VHeat] = {}

    def get(impl: str) -> VHeat:
        if impl not in models:
            models[impl] = VHeat('tiny', hco_impl=impl, **kwargs)
            models[impl].load_state_dict(weights)
        return models[impl]
    return get


def model_case(name: str) -> Callable[[str], Callable[[], object]]:
    """A case of :data:`MODEL_CASES`: vHeat-T models (fixed seed) that
    differ only in ``hco_impl`` (same weights)."""
    if name not in MODEL_CASES:
        raise ValueError(f'model case must be one of {MODEL_CASES}, got '
                         f'{name!r}')
    torch.manual_seed(0)
    if name == 'train512':
        backbones = _vheat_per_impl(img_size=512)
        x = torch.randn(2, 3, 512, 512)
        target = torch.randint(0, 1000, (2, ))
        heads = {}

        def step(backbone: VHeat):
            if id(backbone) not in heads:
                model = Classifier(backbone).train()
                heads[id(backbone)] = (model, torch.optim.AdamW(
                    model.parameters(), lr=1e-6))
            model, optim = heads[id(backbone)]
            loss = F.cross_entropy(model(x), target)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
    else:
        if name.startswith('deploy'):
            side = int(name[len('deploy'):])
            backbones = _vheat_per_impl(img_size=side)
            x = torch.randn(8 if side == 224 else 1, 3, side, side)
        else:
            size = (800, 1216) if name.endswith('tables') else 512
            backbones = _vheat_per_impl(img_size=size,
                                        out_indices=(0, 1, 2, 3))
            x = torch.randn(1, 3, 800, 1216)

        def step(backbone: VHeat):
            backbone.eval()
            if name != 'det800x1216' and not backbone.deployed:
                backbone.switch_to_deploy()
            with torch.no_grad():
                return backbone(x)

    def make(impl: str) -> Callable[[], object]:
        def call():
            return step(backbones(impl))
        return call
    return make


def run_cases(cases: Dict[str, Callable[[str], Callable[[], object]]],
              impls: Sequence[str], repeat: int = 3, runs: int = 5,
              log: Callable[[str], None] = lambda s: None) -> Dict[str, Dict]:
    """Time every case under every implementation, interleaved.

    Returns:
        dict: Per case: ``ms`` (impl -> median over repeats of the
        per-repeat medians, in milliseconds) and ``repeats`` (impl -> the
        per-repeat medians, in repeat order).
    """
    results = {name: dict(ms={}, repeats={i: [] for i in impls})
               for name in cases}
    for r in range(repeat):
        for name, make in cases.items():
            order = list(impls[r % len(impls):]) + list(
                impls[:r % len(impls)])
            for impl in order:
                ms = 1e3 * _median_time(make(impl), runs)
                results[name]['repeats'][impl].append(ms)
                log(f'repeat {r + 1}/{repeat} {name} {impl}: {ms:.1f} ms')
    for res in results.values():
        res['ms'] = {i: statistics.median(v)
                     for i, v in res['repeats'].items()}
    return results


def ratio_spread(res: Dict, slow: str, fast: str) -> Tuple[float, float,
                                                           float]:
    """(median, min, max) over the repeats of ``slow`` time / ``fast``
    time, repeat by repeat."""
    ratios = [a / b for a, b in zip(res['repeats'][slow],
                                   res['repeats'][fast])]
    return statistics.median(ratios), min(ratios), max(ratios)


def table(results: Dict[str, Dict], impls: Sequence[str],
          pairs: Sequence[Tuple[str, str]]) -> List[str]:
    """Markdown rows: a case per row, ms per implementation, then for each
    ``(new, base)`` pair the speed-up of ``new`` over ``base`` (median of
    the per-repeat ratios, with their range)."""
    head = ['case'] + [f'{i} ms' for i in impls] + [
        f'{new} vs {base}' for new, base in pairs]
    rows = ['| ' + ' | '.join(head) + ' |',
            '|' + '---|' * len(head)]
    for name, res in results.items():
        cells = [name] + [f"{res['ms'][i]:.2f}" for i in impls]
        for new, base in pairs:
            med, lo, hi = ratio_spread(res, base, new)
            cells.append(f'{med:.2f}x ({lo:.2f}-{hi:.2f})')
        rows.append('| ' + ' | '.join(cells) + ' |')
    return rows
