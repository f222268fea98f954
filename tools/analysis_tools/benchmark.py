"""Throughput, latency and peak memory of vHeat against Swin and ConvNeXt.

    python tools/analysis_tools/benchmark.py \
        [--models vheat-t:reference vheat-t swin-t convnext-t] \
        [--modes infer train] [--dtypes fp32 bf16] \
        [--sizes 224 384 512 768 1024] [--batch-sizes auto | 8 ...] \
        [--device cpu|cuda] [--warmup 2] [--runs 5] [--no-deploy] \
        [--compile {off,on,both}] [--against DIR] [--threads N] \
        [--backend pytorch onnxruntime onnxruntime-fixed aoti] \
        [--repeat 1] [--profile] [--emulated] [--out-dir DIR]

The yardstick is the machine's limit (the roofline): every sweep first
measures the GEMM peak (the best GFLOP/s of large square ``torch.mm``
products) for each dtype, in a fresh subprocess, and every row reports its
achieved GFLOP/s (2 x multiply-adds x img/s; 3x that for a training step)
and that as a fraction of the peak of its dtype. The multiply-adds per image
come from the FLOPs tool (``get_flops.py``; one count per architecture and
size, the dense DCT for every vHeat implementation) and are printed once.
bf16/fp16 rows on a CPU without native support (no ``avx512_bf16`` /
``amx_bf16`` for bf16) are skipped with a note: emulated, they mean nothing.

Every configuration (model x mode x dtype x resolution x batch) runs in a
fresh subprocess, so each peak-memory figure is its own. vHeat models are
built with ``img_size`` equal to the resolution (FVEs on that grid) and run
deployed for inference unless ``--no-deploy``; ``vheat-t:IMPL`` picks the HCO
implementation (``reference`` is the authors' layout, the baseline of the
``x ref`` columns). Prints a table (median throughput, latency, spread =
(max - min) / median over the timed runs, peak and per-step memory), writes
``results.json``, ``results.csv`` and ``benchmark.png`` (throughput and
memory against resolution) into ``--out-dir``.

``--compile both`` adds a ``torch.compile`` row (model name suffixed
``+compile``) beside each eager one; inference compiles with inductor's
``freezing`` (weights folded and prepacked), training without.
``--against DIR`` adds, for every vHeat spec, a row from another checkout
of this repository (e.g. a ``git worktree`` of an earlier commit; name
suffixed ``@against``), run by that checkout's own code in the same sweep,
so old and new implementations are compared in one interleaved run.

``--profile`` profiles one more step of every row with
:mod:`torch.profiler` and prints the share of its time in matrix products
(what the GEMM peak bounds), norms, elementwise work and copies.

``--backend onnxruntime`` adds, for every vHeat spec, a row (suffixed
``@ort``) that exports the same model (same weights) to ONNX with dynamic
shapes (tables computed in the graph) and times it in ONNX Runtime on the
CPU with the same thread count; ``onnxruntime-fixed`` (``@ort-fixed``)
exports at the row's size with the decay tables baked in as constants;
``aoti`` (``@aoti``) compiles that deployed model with ``torch.export`` and
AOTInductor (``tools/deployment/pytorch2aoti.py``).
Inference in fp32 only; ``pytorch`` (the default) is the eager row.
"""
import argparse
import csv
import json
import os
import os.path as osp
import subprocess
import sys

from mmvheat.analysis.specs import ALL_MODELS, add_models_arg, expand_models
from mmvheat.utils import (
    add_debug_arg,
    add_out_dir_arg,
    add_sizes_arg,
    hidden_alias,
    positive_int,
    run_tool,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_MODELS = ['vheat-t:reference', 'vheat-t', 'swin-t', 'convnext-t']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark vHeat (each HCO implementation), Swin and '
        'ConvNeXt: throughput, latency, peak memory.')
    add_models_arg(parser, DEFAULT_MODELS, "models to time, or 'all' "
                   f"(default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument('--modes', nargs='+', default=['infer'],
                        choices=['infer', 'train'],
                        help="'infer': forward without autograd; 'train': "
                        'forward, backward and an optimizer step '
                        '(default: infer)')
    parser.add_argument('--dtypes', nargs='+', default=['fp32'],
                        choices=['fp32', 'fp16', 'bf16'],
                        help='fp16/bf16 run under autocast')
    add_sizes_arg(parser, [224, 384, 512, 768, 1024],
                  'square input sizes; vHeat is built with img_size equal '
                  'to each (default: %(default)s)')
    hidden_alias(parser, '--resolutions', dest='sizes', nargs='+',
                 type=positive_int)
    parser.add_argument('--batch-sizes', nargs='+', default=['auto'],
                        help="ints, or 'auto': 8 at 224 scaled by 224^2 / "
                        'R^2 (at least 1) on CPU, 64 likewise on CUDA')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'],
                        help='where the models run (default: cpu)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps before the timed ones '
                        '(default: %(default)s)')
    parser.add_argument('--runs', type=int, default=5,
                        help='timed steps per configuration (default: '
                        '%(default)s)')
    parser.add_argument('--no-deploy', action='store_true',
                        help='run vHeat inference in the training form')
    parser.add_argument('--compile', default='off',
                        choices=['off', 'on', 'both'],
                        help="torch.compile every model ('on'), or add a "
                        "compiled row beside each eager one ('both')")
    parser.add_argument('--against', metavar='DIR',
                        help='another checkout of mmvheat whose vHeat rows '
                        'run beside ours (previous-implementation baseline)')
    parser.add_argument('--backend', nargs='+', default=['pytorch'],
                        choices=['pytorch', 'onnxruntime',
                                 'onnxruntime-fixed', 'aoti'],
                        help='pytorch rows, and/or ONNX Runtime or '
                        'AOTInductor rows of the vHeat specs (exported; '
                        'inference fp32)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch decides)')
    add_out_dir_arg(parser, 'work_dirs/benchmark', 'results.json, '
                    'meta.json, results.csv and benchmark.png')
    parser.add_argument('--repeat', type=int, default=1,
                        help='run the whole sweep this many times, '
                        'interleaved, and report per configuration the '
                        'median over the sweeps (steadier ratios on a noisy '
                        'machine)')
    parser.add_argument('--profile', action='store_true',
                        help='profile one more step per row and print '
                        'where its time goes (matrix products, norms, '
                        'elementwise, copies)')
    parser.add_argument('--emulated', action='store_true',
                        help='also run dtypes this CPU only emulates '
                        '(bf16 without avx512_bf16/amx_bf16)')
    parser.add_argument('--timeout', type=int, default=1800,
                        help='seconds per configuration')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    args.models = expand_models(args.models, ALL_MODELS)
    if args.batch_sizes != ['auto']:
        try:
            args.batch_sizes = [positive_int(b) for b in args.batch_sizes]
        except argparse.ArgumentTypeError:
            parser.error("--batch-sizes takes positive ints or 'auto', got "
                         f"{' '.join(args.batch_sizes)}")
    return args


def batch_sizes(args, resolution: int) -> list:
    if args.batch_sizes != ['auto']:
        return list(args.batch_sizes)
    base = 64 if args.device == 'cuda' else 8
    return [max(1, round(base * (224 / resolution)**2))]


def run_worker(spec: str) -> None:
    """Child process: run one configuration (or, with ``peak`` in the
    spec, measure the GEMM peak of a dtype), print its JSON result."""
    import torch

    from mmvheat.analysis.benchmark import gemm_peak, run_config
    cfg = json.loads(spec)
    threads = cfg.pop('threads')
    if threads:
        torch.set_num_threads(threads)
    if 'peak' in cfg:
        result = gemm_peak(cfg['peak'], cfg['device'])
    else:
        result = run_config(**cfg)
    print('RESULT ' + json.dumps(result), flush=True)


def run_child(cfg: dict, timeout: int, root: str = ROOT) -> dict:
    """Run one configuration in a fresh process with the code of ``root``."""
    env = dict(os.environ)
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    tool = osp.join(root, 'tools', 'analysis_tools', 'benchmark.py')
    cmd = [sys.executable, tool, '--worker', json.dumps(cfg)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f'timed out after {timeout} s')
    for line in out.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT '):])
    # the last line of the error (not run_tool's hint on --debug)
    lines = [line for line in (out.stderr or out.stdout).strip().splitlines()
             if not line.startswith('(run with --debug')]
    return dict(error=lines[-1] if lines else f'exit code {out.returncode}')


def add_ratios(results: list) -> None:
    """``x_ref``/``mem_x_ref``: throughput and step memory over the same
    size's ``vheat-?:reference`` row of the same configuration."""
    ref = {}
    for r in results:
        if r['model'].endswith(':reference') and 'error' not in r:
            ref[(r['model'].split(':')[0], r['mode'], r['dtype'],
                 r['resolution'], r['batch'])] = r
    for r in results:
        base = ref.get((r['model'].split(':')[0], r['mode'], r['dtype'],
                        r['resolution'], r['batch']))
        if base is None or 'error' in r:
            continue
        r['x_ref'] = r['img_per_s'] / base['img_per_s']
        r['mem_x_ref'] = r['step_mem_mb'] / max(base['step_mem_mb'], 1e-9)
    # x_prev: over the same spec's row from the --against checkout
    prev = {(r['model'].replace('@against', ''), r['mode'], r['dtype'],
             r['resolution'], r['batch']): r
            for r in results if '@against' in r['model'] and 'error' not in r}
    for r in results:
        base = prev.get((r['model'], r['mode'], r['dtype'], r['resolution'],
                         r['batch']))
        if base is None or 'error' in r or '@against' in r['model']:
            continue
        r['x_prev'] = r['img_per_s'] / base['img_per_s']
        r['mem_x_prev'] = r['step_mem_mb'] / max(base['step_mem_mb'], 1e-9)


def format_table(results: list) -> str:
    from mmvheat.utils.table import markdown_table
    head = ['model', 'mode', 'dtype', 'res', 'batch', 'img/s', 'GFLOP/s',
            '% peak', 'latency ms', 'spread', 'peak MB', 'step MB', 'x ref',
            'mem x ref', 'x prev', 'mem x prev']
    rows = []
    for r in results:
        row = [r['model'], r['mode'], r['dtype'], str(r['resolution']),
               str(r['batch'])]
        if 'error' in r:
            row += ['error: ' + r['error'][:60]] + [''] * 10
        else:
            row += [f"{r['img_per_s']:.2f}",
                    f"{r['gflops']:.0f}" if 'gflops' in r else '-',
                    f"{r['peak_frac'] * 100:.0f}%" if 'peak_frac' in r
                    else '-',
                    f"{r['median_s'] * 1e3:.1f}",
                    f"{r['spread'] * 100:.0f}%", f"{r['peak_mem_mb']:.0f}",
                    f"{r['step_mem_mb']:.0f}",
                    f"{r['x_ref']:.2f}" if 'x_ref' in r else '-',
                    f"{r['mem_x_ref']:.2f}" if 'mem_x_ref' in r else '-',
                    f"{r['x_prev']:.3f}" if 'x_prev' in r else '-',
                    f"{r['mem_x_prev']:.2f}" if 'mem_x_prev' in r else '-']
        rows.append(row)
    return markdown_table(head, rows)


def format_time_shares(results: list) -> str:
    """Where each profiled row's time goes, as shares of its profiled
    step (``--profile``)."""
    from mmvheat.analysis.benchmark import TIME_KINDS
    rows = [r for r in results if 'time_shares' in r]
    if not rows:
        return ''
    from mmvheat.utils.table import markdown_table
    kinds = [k for k, _ in TIME_KINDS] + ['other']
    kinds = [k for k in kinds if any(k in r['time_shares'] for r in rows)]
    head = ['model', 'mode', 'dtype', 'res', 'profiled ms'] + kinds
    body = [[r['model'], r['mode'], r['dtype'], str(r['resolution']),
             f"{r['time_shares']['total_ms']:.0f}"]
            + [f"{r['time_shares'].get(k, 0) * 100:.0f}%" for k in kinds]
            for r in rows]
    return 'Where the time goes (self time of one profiled step):\n' + \
        markdown_table(head, body)


def plot(results: list, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ok = [r for r in results if 'error' not in r]
    groups = sorted({(r['mode'], r['dtype']) for r in ok})
    if not groups:
        return
    fig, axes = plt.subplots(2, len(groups), figsize=(5 * len(groups), 7),
                             squeeze=False)
    for col, (mode, dtype) in enumerate(groups):
        rows = [r for r in ok if (r['mode'], r['dtype']) == (mode, dtype)]
        for model in dict.fromkeys(r['model'] for r in rows):
            pts = sorted((r['resolution'], r['img_per_s'], r['step_mem_mb'])
                         for r in rows if r['model'] == model)
            res = [p[0] for p in pts]
            axes[0, col].plot(res, [p[1] for p in pts], 'o-', label=model)
            axes[1, col].plot(res, [p[2] for p in pts], 'o-', label=model)
        axes[0, col].set(title=f'{mode}, {dtype}', ylabel='images / s',
                         yscale='log')
        axes[1, col].set(xlabel='resolution', ylabel='step memory (MB)',
                         yscale='log')
        axes[0, col].legend(fontsize=8)
        for ax in axes[:, col]:
            ax.grid(alpha=.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


BACKEND_SUFFIX = {'onnxruntime': '@ort', 'onnxruntime-fixed': '@ort-fixed',
                  'aoti': '@aoti'}


def variants(args) -> list:
    """(row name, spec, compile, checkout root, backend) for every model
    spec."""
    compiles = {'off': [False], 'on': [True], 'both': [False, True]}
    rows = []
    for spec in args.models:
        roots = [('', ROOT)]
        if args.against and spec.startswith('vheat'):
            roots.append(('@against', osp.abspath(args.against)))
        if 'pytorch' in args.backend:
            for suffix, root in roots:
                for compiled in compiles[args.compile]:
                    name = spec + suffix + ('+compile' if compiled else '')
                    rows.append((name, spec, compiled, root, 'pytorch'))
        if spec.startswith('vheat'):
            rows += [(spec + BACKEND_SUFFIX[b], spec, False, ROOT, b)
                     for b in args.backend if b != 'pytorch']
    return rows


def measure_peaks(args, dtypes: list) -> dict:
    """{dtype: GEMM peak GFLOP/s}, each measured in a fresh process."""
    peaks = {}
    for dtype in dtypes:
        result = run_child(dict(peak=dtype, device=args.device,
                                threads=args.threads), args.timeout)
        if 'error' in result:
            print(f'[benchmark] GEMM peak {dtype}: {result["error"]}')
            continue
        peaks[dtype] = result['gflops']
        print(f'[benchmark] GEMM peak {dtype}: {result["gflops"]:.0f} '
              'GFLOP/s', flush=True)
    return peaks


def run_dtypes(args) -> list:
    """``--dtypes`` without those the device only emulates (unless
    ``--emulated``), with a note for each one left out."""
    from mmvheat.analysis.benchmark import native_dtypes
    native = native_dtypes(args.device)
    skipped = [d for d in args.dtypes if d not in native]
    if skipped and not args.emulated:
        print(f'[benchmark] skipping {skipped}: not native on this '
              f'{args.device} (emulated timings mean nothing; --emulated '
              'runs them anyway)')
        return [d for d in args.dtypes if d in native]
    return list(args.dtypes)


def sweep(args, dtypes: list) -> tuple:
    """The GEMM peaks, then every configuration once, each in a fresh
    process. Returns (peaks, results)."""
    peaks = measure_peaks(args, dtypes)
    results = []
    for mode in args.modes:
        for dtype in dtypes:
            for res in args.sizes:
                for batch in batch_sizes(args, res):
                    for name, spec, compiled, root, backend in variants(
                            args):
                        cfg = dict(
                            spec=spec, mode=mode, dtype=dtype,
                            resolution=res, batch=batch, device=args.device,
                            warmup=args.warmup, runs=args.runs,
                            deploy=not args.no_deploy, compile=compiled,
                            threads=args.threads)
                        # only what another checkout (--against) knows
                        if backend != 'pytorch':
                            cfg['backend'] = backend
                        if args.profile:
                            cfg['profile'] = True
                        result = run_child(cfg, args.timeout, root)
                        result = {**result,
                                  **dict(model=name, mode=mode, dtype=dtype,
                                         resolution=res, batch=batch)}
                        if dtype in peaks:  # this sweep's limit
                            result['gemm_peak_gflops'] = peaks[dtype]
                        results.append(result)
                        status = result.get('error') or (
                            f"{result['img_per_s']:.2f} img/s")
                        print(f'[benchmark] {name} {mode} {dtype} {res} '
                              f'b{batch}: {status}', flush=True)
    return peaks, results


def flop_counts(args) -> dict:
    """{(spec, resolution): multiply-adds per image}, one count per
    architecture and size (every vHeat implementation of an arch shares
    it), from the FLOPs tool."""
    from mmvheat.analysis.benchmark import model_macs, parse_spec
    counts, by_arch = {}, {}
    for spec in args.models:
        family, arch, _ = parse_spec(spec)
        for res in args.sizes:
            key = (family, arch, res)
            if key not in by_arch:
                by_arch[key] = model_macs(spec, res)
            counts[(spec, res)] = by_arch[key]
    return counts


def add_roofline(results: list, counts: dict) -> None:
    """``gflops`` and ``peak_frac`` of every row (see the module
    docstring), the fraction of the GEMM peak measured in the row's own
    sweep (the machine's limit drifts between sweeps)."""
    from mmvheat.analysis.benchmark import achieved
    for r in results:
        spec = r['model'].split('@')[0].replace('+compile', '')
        if 'error' in r or (spec, r['resolution']) not in counts:
            continue
        r.update(achieved(r, counts[(spec, r['resolution'])],
                          r.get('gemm_peak_gflops')))


def roofline_header(counts: dict, peaks: dict) -> str:
    """The peaks and FLOP counts the table's GFLOP/s columns use."""
    lines = ['GEMM peak (best large square torch.mm, measured in each '
             'sweep): ' + ', '.join(
                 f'{d} ' + ' / '.join(f'{g:.0f}' for g in found)
                 + ' GFLOP/s' for d, found in peaks.items())]
    seen = {}
    for (spec, res), macs in counts.items():
        seen.setdefault((spec.split(':')[0].split('+')[0], res), macs)
    lines.append('Multiply-adds per image (FLOPs tool, the same for every '
                 'implementation): ' + ', '.join(
                     f'{name}@{res} {macs / 1e9:.2f} G'
                     for (name, res), macs in seen.items()))
    lines.append('GFLOP/s = 2 x multiply-adds x img/s (x3 for a training '
                 'step); % peak = GFLOP/s over the peak of the row\'s dtype '
                 'in the row\'s sweep')
    return '\n'.join(lines)


def merge_repeats(runs: list) -> dict:
    """One configuration over several sweeps: the sweep with the median
    throughput, plus every sweep's throughput in sweep order
    (``sweep_img_per_s``, None for a failed sweep), so the rows of one
    sweep can be compared with each other."""
    ok = sorted((r for r in runs if 'error' not in r),
                key=lambda r: r['img_per_s'])
    if not ok:
        return runs[0]
    merged = dict(ok[len(ok) // 2])
    if len(runs) > 1:
        merged['sweep_img_per_s'] = [r.get('img_per_s') for r in runs]
    return merged


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker)
    os.makedirs(args.out_dir, exist_ok=True)
    dtypes = run_dtypes(args)
    counts = flop_counts(args)
    sweeps = [sweep(args, dtypes) for _ in range(max(1, args.repeat))]
    peaks = {}  # per dtype, every sweep's
    for dtype in dtypes:
        found = [p[dtype] for p, _ in sweeps if dtype in p]
        if found:
            peaks[dtype] = found
    results = [merge_repeats(list(runs))
               for runs in zip(*(r for _, r in sweeps))]
    add_ratios(results)
    add_roofline(results, counts)
    print(roofline_header(counts, peaks))
    print(format_table(results))
    if args.profile:
        print(format_time_shares(results))
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    from mmvheat.analysis.benchmark import machine_meta
    meta = dict(machine_meta(args.threads), gemm_peak_gflops=peaks,
                macs_per_image={f'{spec}@{res}': macs
                                for (spec, res), macs in counts.items()})
    with open(osp.join(args.out_dir, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    keys = ['model', 'mode', 'dtype', 'resolution', 'batch', 'img_per_s',
            'gflops', 'peak_frac', 'median_s', 'spread', 'peak_mem_mb',
            'step_mem_mb', 'x_ref', 'mem_x_ref', 'x_prev', 'mem_x_prev',
            'error']
    with open(osp.join(args.out_dir, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, keys, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(results)
    plot(results, osp.join(args.out_dir, 'benchmark.png'))
    print(f'[benchmark] wrote results.json, meta.json, results.csv, '
          f'benchmark.png to {args.out_dir}')


if __name__ == '__main__':
    sys.exit(run_tool(main, 'benchmark.py'))
