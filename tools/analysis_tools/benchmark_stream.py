"""A detection-style stream: one image at a time, every image of another
size, through the vHeat backbone in eval mode without autograd (what
mmdet's test loop does). Reports seconds per image and the process's peak
memory, for this checkout and optionally another one (``--against DIR``,
e.g. a ``git worktree`` of an earlier commit), interleaved.

    python tools/analysis_tools/benchmark_stream.py [--models vheat-t] \\
        [--img-size 512] [--images 8] [--min-side 480] [--max-side 800] \\
        [--repeat 3] [--against DIR]

Each run is a fresh process; both checkouts see the same sizes and weights.
``--img-size`` is the backbone's ``img_size`` (its FVE grid), not an input
size: the inputs are drawn between ``--min-side`` and ``--max-side``.
``--models`` are vHeat model specs (:mod:`mmvheat.analysis.specs`); a
spec's ``:IMPL`` is passed as ``hco_impl``, without one each checkout uses
its own default. ``--arch`` is the older spelling of ``--models``.
Only the public ``VHeat`` API is used, so any checkout of this repository
can serve as the baseline.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

from mmvheat.analysis.specs import (
    add_models_arg,
    expand_models,
    model_spec,
    parse_spec,
    spec_impl,
    unsupported,
)
from mmvheat.utils import (
    ToolError,
    add_debug_arg,
    hidden_alias,
    positive_int,
    run_tool,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

WORKER = r'''
import json, random, sys, time
import torch
from mmvheat.models import VHeat
cfg = json.loads(sys.argv[1])
torch.manual_seed(0)
extra = dict(hco_impl=cfg['hco_impl']) if cfg.get('hco_impl') else {}
model = VHeat(cfg['arch'], img_size=cfg['img_size'],
              out_indices=(0, 1, 2, 3), **extra).eval()
rng = random.Random(0)
sizes = [(rng.randint(cfg['min_side'], cfg['max_side']),
          rng.randint(cfg['min_side'], cfg['max_side']))
         for _ in range(cfg['images'])]
times = []
with torch.no_grad():
    model(torch.randn(1, 3, *sizes[0]))  # warm-up
    for size in sizes:
        x = torch.randn(1, 3, *size)
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
with open('/proc/self/status') as f:
    peak = [int(l.split()[1]) / 1024 for l in f if l.startswith('VmHWM')][0]
print('RESULT ' + json.dumps(dict(s_per_image=sum(times) / len(times),
                                  peak_mb=peak)))
'''


def run(root: str, cfg: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run([sys.executable, '-c', WORKER, json.dumps(cfg)],
                         capture_output=True, text=True, env=env, cwd=root)
    for line in out.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT '):])
    lines = out.stderr.strip().splitlines() or [f'exit {out.returncode}']
    raise ToolError(f'the stream worker failed in {root}: {lines[-1]} '
                    '(run the worker alone to see all of its output)')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_models_arg(parser, ['vheat-t'], 'vHeat backbones to run, one row '
                   "each per checkout, or 'all' (default: vheat-t)")
    hidden_alias(parser, '--arch', dest='models', nargs=1, type=model_spec)
    parser.add_argument('--img-size', type=positive_int, default=512,
                        help="the backbone's img_size, its FVE grid (512 as "
                        "the authors' detection models), not an input size")
    parser.add_argument('--images', type=positive_int, default=8,
                        help='images per run, each of another size '
                        '(default: %(default)s)')
    parser.add_argument('--min-side', type=positive_int, default=480,
                        help='smallest image side (default: %(default)s)')
    parser.add_argument('--max-side', type=positive_int, default=800,
                        help='largest image side (default: %(default)s)')
    parser.add_argument('--repeat', type=positive_int, default=3,
                        help='runs per model and checkout, interleaved; the '
                        'table gives their medians (default: %(default)s)')
    parser.add_argument('--against', metavar='DIR',
                        help='another checkout to compare with')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    args.models = expand_models(args.models, ['vheat-t', 'vheat-s',
                                              'vheat-b'])
    wrong = unsupported(args.models, ['vheat'], reference=False)
    if wrong or any('+' in spec for spec in args.models):
        parser.error(wrong or '--models: +sac/+nocp are training options; '
                     'this tool runs inference')
    if args.min_side > args.max_side:
        parser.error(f'--min-side {args.min_side} is above --max-side '
                     f'{args.max_side}')
    if args.against and not osp.isdir(args.against):
        raise FileNotFoundError(f'--against: no such folder: {args.against}')
    roots = {'this checkout': ROOT}
    if args.against:
        roots['against'] = osp.abspath(args.against)
    results = {(model, name): [] for model in args.models for name in roots}
    for _ in range(args.repeat):
        for model, name in results:
            cfg = dict(arch=parse_spec(model)[1], img_size=args.img_size,
                       images=args.images, min_side=args.min_side,
                       max_side=args.max_side, hco_impl=spec_impl(model))
            results[model, name].append(run(roots[name], cfg))
    print(f'| model | checkout | s / image (median of {args.repeat}) | '
          'runs | peak RSS MB (median) |')
    print('|---|---|---|---|---|')
    for (model, name), runs in results.items():
        t = [r['s_per_image'] for r in runs]
        m = [r['peak_mb'] for r in runs]
        print(f'| {model} | {name} | {statistics.median(t):.3f} | '
              f'{", ".join(f"{v:.3f}" for v in t)} | '
              f'{statistics.median(m):.0f} |')


if __name__ == '__main__':
    sys.exit(run_tool(main, 'benchmark_stream.py'))
