"""The HCO's DCT implementations against each other: the heat filter alone
on maps of several sizes, and vHeat-T steps, in one process, interleaved.

    python tools/analysis_tools/benchmark_dct.py \\
        [--sizes 56 100 128 200 256 320 200x304] [--channels 96] \\
        [--cases deploy1024 det800x1216_tables det800x1216 train512] \\
        [--impls matmul split fft] [--repeat 3] [--runs 5] \\
        [--threads N] [--out-dir work_dirs/benchmark_dct]
    python tools/analysis_tools/benchmark_dct.py --depth-sweep 3 \\
        --sizes 56 64 80 96 112 128 256 200x304 --cases

``matmul`` is the dense products, ``split`` the default filter, the
even/odd split (on axes the fixed rule splits), ``fft`` the FFT form (see
:mod:`mmvheat.ops.filters`). Prints one markdown table for the filter and
one for the models: milliseconds per call (median over ``--repeat`` repeats
of the median of ``--runs`` calls), and each impl's speed-up over
``matmul`` as the
median of the per-repeat ratios with their range. Writes ``results.json``
and ``results.md`` into ``--out-dir``. Pass ``--cases`` with no names (or
``--sizes`` with none) to skip that table. ``--cases`` was ``--models``
before ``--models`` came to mean model specs in every tool; the old
spelling still works.

``--grad`` times the filter's forward and backward (gradients of the map
and the damping factors) instead of its forward without autograd.
``--compile`` compiles each filter (``fullgraph=True``, static shapes)
before timing it. ``--depth-sweep D`` times the filter at ``--sizes`` with
0 (dense) to D even/odd splits along both axes instead of the
implementations (how the split rule's thresholds were chosen).
"""
import argparse
import json
import os
import os.path as osp
import platform
import sys

import torch
import torch._dynamo

from mmvheat.analysis.dct_benchmark import (
    MODEL_CASES,
    depth_case,
    filter_case,
    model_case,
    run_cases,
    table,
)
from mmvheat.ops import HCO_IMPLS, SPLIT_MIN_LENGTH
from mmvheat.utils import (
    add_debug_arg,
    add_out_dir_arg,
    add_sizes_arg,
    hidden_alias,
    run_tool,
)


def parse_size(text: str):
    """argparse ``type``: ``N`` or ``HxW``, positive ints -> (H, W)."""
    h, _, w = text.partition('x')
    try:
        size = int(h), int(w or h)
    except ValueError:
        size = (0, 0)
    if min(size) < 1:
        raise argparse.ArgumentTypeError(
            f'a size is N or HxW (positive ints), got {text!r}')
    return size


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark the HCO DCT implementations (filter alone '
        'and vHeat-T steps), interleaved in one process.')
    add_sizes_arg(parser, [parse_size(s) for s in (
        '56', '100', '128', '200', '256', '320', '200x304')],
        'filter map sizes, N or HxW; none: skip the filter table',
        type=parse_size, nargs='*', metavar='N|HxW')
    parser.add_argument('--channels', type=int, default=96,
                        help='channels of the filter maps (default: '
                        '%(default)s)')
    parser.add_argument('--batch', type=int, default=1,
                        help='filter batch (default: %(default)s)')
    parser.add_argument('--cases', nargs='*', default=list(MODEL_CASES),
                        choices=MODEL_CASES,
                        help='vHeat-T step cases to time; none: skip the '
                        'model table (default: all)')
    hidden_alias(parser, '--models', dest='cases', nargs='*',
                 choices=MODEL_CASES)
    parser.add_argument('--impls', nargs='+',
                        default=['matmul', 'split'],
                        choices=HCO_IMPLS,
                        help='DCT implementations to compare (default: '
                        '%(default)s)')
    parser.add_argument('--depth-sweep', type=int, metavar='D',
                        help='time 0..D splits per axis at --sizes instead')
    parser.add_argument('--grad', action='store_true',
                        help='time the filter forward and backward')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the filters (filter table only)')
    parser.add_argument('--repeat', type=int, default=3,
                        help='interleaved repeats; medians and ranges are '
                        'over these (default: %(default)s)')
    parser.add_argument('--runs', type=int, default=5,
                        help='timed calls per repeat (default: '
                        '%(default)s)')
    parser.add_argument('--threads', type=int,
                        help='torch threads (default: torch default)')
    add_out_dir_arg(parser, 'work_dirs/benchmark_dct',
                    'results.json and results.md')
    add_debug_arg(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    meta = dict(torch=torch.__version__, threads=torch.get_num_threads(),
                machine=platform.processor() or platform.machine(),
                split_min_length=SPLIT_MIN_LENGTH, repeat=args.repeat,
                runs=args.runs, channels=args.channels, batch=args.batch)
    out = dict(meta=meta)
    grad = ' forward and backward' if args.grad else ''
    pairs = [(b, 'matmul') for b in ('split', 'fft')
             if 'matmul' in args.impls and b in args.impls]
    lines = [f'torch {meta["torch"]}, {meta["threads"]} threads, '
             f'{args.repeat} repeats x {args.runs} runs']
    if args.sizes and args.depth_sweep:
        names = [f'split{d}' for d in range(args.depth_sweep + 1)]
        cases = {f'{h}x{w}': depth_case((h, w), args.channels, args.batch,
                                        grad=args.grad)
                 for h, w in args.sizes}
        res = run_cases(cases, names, args.repeat, args.runs, log)
        out['depth_sweep'] = res
        lines += ['', f'Heat filter{grad} with 0-{args.depth_sweep} splits '
                  f'per axis, fp32, batch {args.batch}, {args.channels} '
                  'channels (vs split0, the dense products):', '']
        lines += table(res, names, [(n, 'split0') for n in names[1:]])
    elif args.sizes:
        if args.compile:  # a compiled graph per size and implementation
            torch._dynamo.config.recompile_limit = 1024
        cases = {f'{h}x{w}': filter_case((h, w), args.channels, args.batch,
                                         compile=args.compile, grad=args.grad)
                 for h, w in args.sizes}
        res = run_cases(cases, args.impls, args.repeat, args.runs, log)
        out['filter'] = res
        how = 'torch.compile, ' if args.compile else ''
        lines += ['', f'Heat filter (DCT, damp, IDCT){grad}, {how}fp32, batch '
                  f'{args.batch}, {args.channels} channels:', '']
        lines += table(res, args.impls, pairs)
    if args.cases:
        cases = {name: model_case(name) for name in args.cases}
        res = run_cases(cases, args.impls, args.repeat, args.runs, log)
        out['models'] = res
        lines += ['', 'vHeat-T, fp32:', ''] + table(res, args.impls, pairs)
    text = '\n'.join(lines)
    print(text)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(out, f, indent=1)
    with open(osp.join(args.out_dir, 'results.md'), 'w') as f:
        f.write(text + '\n')


if __name__ == '__main__':
    sys.exit(run_tool(main, 'benchmark_dct.py'))
