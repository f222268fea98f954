"""A detection-style stream: one image at a time, every image of another
size, through the vHeat backbone in eval mode without autograd (what
mmdet's test loop does). Reports seconds per image and the process's peak
memory, for this checkout and optionally another one (``--against DIR``,
e.g. a ``git worktree`` of an earlier commit), interleaved.

    python tools/analysis_tools/benchmark_stream.py [--arch tiny] \\
        [--img-size 512] [--images 8] [--min-side 480] [--max-side 800] \\
        [--repeat 3] [--against DIR]

Each run is a fresh process; both checkouts see the same sizes and weights.
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

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

WORKER = r'''
import json, random, sys, time
import torch
from mmvheat.models import VHeat
cfg = json.loads(sys.argv[1])
torch.manual_seed(0)
model = VHeat(cfg['arch'], img_size=cfg['img_size'],
              out_indices=(0, 1, 2, 3)).eval()
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
    raise RuntimeError(f'stream worker failed in {root}:\n{out.stderr[-2000:]}')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='tiny')
    parser.add_argument('--img-size', type=int, default=512,
                        help='FVE grid of the model (512 as the authors\' '
                        'detection models)')
    parser.add_argument('--images', type=int, default=8)
    parser.add_argument('--min-side', type=int, default=480)
    parser.add_argument('--max-side', type=int, default=800)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--against', metavar='DIR',
                        help='another checkout to compare with')
    args = parser.parse_args(argv)
    cfg = dict(arch=args.arch, img_size=args.img_size, images=args.images,
               min_side=args.min_side, max_side=args.max_side)
    roots = {'this checkout': ROOT}
    if args.against:
        roots['against'] = osp.abspath(args.against)
    results = {name: [] for name in roots}
    for _ in range(args.repeat):
        for name, root in roots.items():
            results[name].append(run(root, cfg))
    print(f'| checkout | s / image (median of {args.repeat}) | runs | '
          'peak RSS MB (median) |')
    print('|---|---|---|---|')
    for name, runs in results.items():
        t = [r['s_per_image'] for r in runs]
        m = [r['peak_mb'] for r in runs]
        print(f'| {name} | {statistics.median(t):.3f} | '
              f'{", ".join(f"{v:.3f}" for v in t)} | '
              f'{statistics.median(m):.0f} |')


if __name__ == '__main__':
    main()
