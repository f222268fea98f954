"""Generate the benchmark pages of the docs from the committed results.

Reads every result under ``docs/benchmark/`` (``results.json`` written by
``tools/analysis_tools/benchmark.py`` or ``benchmark_dct.py``, and the
Markdown table of ``benchmark_stream.py``) and writes, into the output
folder, one MyST page per group of results with

* the provenance of each result: machine (CPU model, cores, threads), torch
  version, device, date; a field the result file does not hold is shown as
  "not recorded" (the date the file was committed is added when git knows
  it);
* a table of medians with their ranges (over the timed runs, and over the
  interleaved sweeps or repeats when there were several);
* a PNG plot of the same numbers.

Run by ``docs/en/conf.py`` before every Sphinx build, so the pages always
match the data; it can also run alone::

    python docs/en/_scripts/benchmark_pages.py \
        --results docs/benchmark --out docs/en/notes/benchmarks

Only the standard library, numpy-free Python and matplotlib are used.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys

NOT_RECORDED = 'not recorded'

# The groups of results and what each result is. Paths are relative to the
# results folder. ``note`` says how the result was produced; it comes from
# the notes written when the result was committed. ``skip_test`` marks a
# ``command`` today's tools no longer take (the docs test skips it and says
# why; see docs/en/contributing.md).
PAGES = [
    dict(
        name='roofline',
        title='Against the machine\'s limit: vHeat-T, Swin-T, ConvNeXt-T',
        against='220c9a6',
        legend=False,
        intro=(
            'vHeat-T, Swin-T and ConvNeXt-T do about the same multiply-adds '
            'and are all bound by matrix products on a CPU, so the yardstick '
            'is the machine\'s limit: every result below measured the GEMM '
            'peak (the best large square `torch.mm`) of each dtype in the '
            'same run, and each row gives its achieved GFLOP/s (2 x '
            'multiply-adds x img/s, three times that for a training step; '
            'the multiply-adds come from the FLOPs tool, the same count for '
            'every implementation of an architecture) and that as a '
            'fraction of the peak. bf16 rows run under autocast on a CPU '
            'with native bf16 (`avx512_bf16`). Inference rows of vHeat are '
            'deployed (`switch_to_deploy()`); training rows are a forward, '
            'cross-entropy, backward and AdamW step, with the defaults '
            '(no activation checkpointing). `@against` rows run an earlier '
            'implementation (named in the provenance line) in the same '
            'sweep, whose training used selective checkpointing by '
            'default; `+nocp` names that setting explicitly on both. '
            '`+compile` '
            'rows run under `torch.compile` (inference with inductor\'s '
            '`freezing`), compiled afresh for the row\'s shape.'),
        results=[
            dict(path='roofline/infer_eager', plot='roofline',
                 title='Inference, eager, fp32 and bf16, 224 and 1024',
                 command='git worktree add /tmp/prev 220c9a6\n'
                         'python tools/analysis_tools/benchmark.py '
                         '--models vheat-t swin-t convnext-t --against '
                         '/tmp/prev \\\n    --modes infer --dtypes fp32 bf16 '
                         '--sizes 224 1024 --threads 2'),
            dict(path='roofline/train_eager', plot='roofline',
                 title='Training step, eager, fp32 and bf16, 224 batch 8',
                 note='Two sweeps. The `vheat-t+nocp@against` rows failed '
                      'because the earlier implementation spells the spec '
                      '`vheat-t:split+nocp` (its non-checkpointed training '
                      'path is the same code as `vheat-t+nocp` here). '
                      '`vheat-t@against` in bf16 failed because the '
                      'earlier selective checkpointing could not run '
                      'backward outside autocast (fixed in the code '
                      'measured here). `vheat-t` and `vheat-t+nocp` run the '
                      'same code: their spread shows the machine\'s noise.',
                 command='git worktree add /tmp/prev 220c9a6\n'
                         'python tools/analysis_tools/benchmark.py '
                         '--models vheat-t vheat-t+nocp swin-t convnext-t '
                         '\\\n    --against /tmp/prev --modes train --dtypes '
                         'fp32 bf16 --sizes 224 --batch-sizes 8 --threads 2'),
            dict(path='roofline/train_memory',
                 title='Training step with and without selective '
                       'checkpointing, 224 and 512',
                 note='`+sac` turns selective activation checkpointing '
                      'on; the default is off. *step memory* is the growth '
                      'of the process\'s resident set over the steps.',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-t vheat-t+sac --modes train '
                         '\\\n    --dtypes fp32 bf16 --sizes 224 512 '
                         '--threads 2'),
            dict(path='roofline/profile',
                 title='Where the time goes, eager, 224 batch 8',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-t --modes infer train \\\n'
                         '    --dtypes fp32 bf16 --sizes 224 '
                         '--batch-sizes 8 --profile --threads 2'),
            dict(path='roofline/deploy', plot='roofline',
                 title='Deployed inference paths, fp32, 224 batch 8',
                 note='Eager PyTorch; `torch.compile` with freezing; the '
                      'fixed-size ONNX file in ONNX Runtime (`@ort-fixed`); '
                      'the AOTInductor package of '
                      '`tools/deployment/pytorch2aoti.py` (`@aoti`). Same '
                      'weights, one sweep.',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-t --compile both \\\n'
                         '    --backend pytorch onnxruntime-fixed aoti '
                         '--modes infer --sizes 224 --profile --threads 2'),
            dict(path='roofline/infer_compiled', plot='roofline',
                 title='Inference under torch.compile (freezing), 224',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-t swin-t convnext-t --compile on '
                         '\\\n    --modes infer --dtypes fp32 bf16 '
                         '--sizes 224 --threads 2'),
            dict(path='roofline/train_compiled', plot='roofline',
                 title='Training step under torch.compile, 224 batch 8',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-t swin-t --compile on --modes train '
                         '\\\n    --dtypes fp32 bf16 --sizes 224 '
                         '--batch-sizes 8 --threads 2'),
            dict(path='roofline/small', plot='roofline',
                 title='The small models, eager, inference and training, '
                       '224 batch 8',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-s swin-s convnext-s \\\n'
                         '    --modes infer train --dtypes fp32 bf16 '
                         '--sizes 224 --batch-sizes 8 --threads 2'),
        ]),
    dict(
        name='plain',
        title='The plain model against the previous implementation',
        against='cf3ddfb',
        intro=(
            'The plain model (no implicit decay tables, one forward path, '
            'selective activation checkpointing in training, the split DCT '
            'on CPUs only from 256) against the implementation before it '
            '(named in each provenance line) in the same interleaved '
            'sweeps: rows ending in `@against` are that code, each with '
            'its own default filter. Both '
            'are deployed for inference unless the result says '
            '`--no-deploy` (the previous code then still reused its tables '
            'in eval mode; the plain model computes its factors in every '
            'forward). `+nocp` rows train without selective checkpointing; '
            '`vheat-t:reference` is the authors\' layout '
            '(`mmvheat.analysis.reference_vheat`). Single runs on these '
            'shared machines vary by up to 25%, so compare the rows of one '
            'sweep (the sweep columns), not single numbers. Reproduce with '
            'a worktree of the old commit:\n\n'
            '```bash\n'
            'git worktree add /tmp/prev cf3ddfb\n'
            'python tools/analysis_tools/benchmark.py --models vheat-t '
            '--against /tmp/prev \\\n'
            '    --modes infer train --sizes 224 1024 --batch-sizes auto '
            '--warmup 1 --repeat 3\n'
            '```'),
        results=[
            dict(path='plain_against_main',
                 title='Inference (deployed) and training step, fp32'),
            dict(path='plain_against_main_nodeploy',
                 title='Inference without a deploy step, fp32',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t --against /tmp/prev --modes infer '
                         '--no-deploy --sizes 224 1024 --batch-sizes auto '
                         '--warmup 1 --runs 3 --repeat 3'),
            dict(path='plain_train_peers',
                 title='Training step against Swin-T and ConvNeXt-T, 224',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t vheat-t:split+nocp swin-t convnext-t '
                         '--modes '
                         'train --sizes 224 --batch-sizes 8 --warmup 1 '
                         '--repeat 3'),
            dict(path='plain_memory_512',
                 title='Training-step memory at 512 against the authors\' '
                       'layout, fp32 and bf16',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t:reference vheat-t:matmul '
                         'vheat-t:matmul+nocp --modes train --sizes 512 '
                         '--batch-sizes 2 --dtypes fp32 bf16 --warmup 1 '
                         '--runs 1',
                 commit='4364def',
                 note='Measured on a loaded machine. Later '
                      'changes do not touch this case: at 512 no axis is '
                      '256 long (the default filter is the dense one) and '
                      'the gate\'s SiLU result is recomputed under '
                      'selective checkpointing.'),
            dict(path='plain_infer_1024_paired',
                 title='Deployed inference at 1024, eight sweeps',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t --against /tmp/prev --modes infer --sizes '
                         '1024 --batch-sizes 1 --warmup 1 --runs 2 --repeat 8 '
                         '--threads 2'),
            dict(path='plain_infer_1024_paired_retained',
                 title='The same, with glibc told to keep freed memory',
                 note='Freed buffers stay in the process, so no step '
                      'faults its activations in again. The gap above is '
                      'that cost: the plain model allocates a fresh buffer '
                      'for each elementwise step, the previous code wrote '
                      'several in place. In ad-hoc counts (getrusage) a '
                      'deployed forward at 1024 took 350 000 minor page '
                      'faults after the model had run once at 64x64 (as '
                      'the benchmark\'s classifier does when it is built), '
                      'against about 100 000 for the previous code, and '
                      'none under these settings.',
                 command='MALLOC_MMAP_THRESHOLD_=4294967296 '
                         'MALLOC_TRIM_THRESHOLD_=68719476736 python '
                         'tools/analysis_tools/benchmark.py --models vheat-t '
                         '--against /tmp/prev --modes infer --sizes 1024 '
                         '--batch-sizes 1 --warmup 1 --runs 2 --repeat 8 '
                         '--threads 2'),
            dict(path='plain_infer_1024_compiled',
                 title='Deployed inference at 1024, eager and compiled, two '
                       'sweeps',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t --against /tmp/prev --modes infer --sizes '
                         '1024 --batch-sizes 1 --compile both --warmup 1 '
                         '--runs 2 --repeat 2 --threads 2'),
            dict(path='plain_train_224_paired',
                 title='Training step at 224, with and without selective '
                       'checkpointing, four sweeps',
                 note='`vheat-t:split+nocp@against` has no row: the '
                      'previous code has no `+nocp` option.',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t vheat-t:split+nocp --against /tmp/prev '
                         '--modes train --sizes 224 --batch-sizes 8 '
                         '--warmup 1 --runs 2 --repeat 4 --threads 2'),
            dict(path='split_default',
                 title='The default filter (split from 256 on CPUs) against '
                       'dense products, inference',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t:matmul vheat-t --modes infer --sizes 512 '
                         '1024 --batch-sizes auto --warmup 1 --repeat 3'),
            dict(path='split128_infer',
                 title='A split from 128 against dense products, inference '
                       'at 384 and 512 (384 does not split: the spread '
                       'of identical code)',
                 command='SPLIT_MIN_LENGTH was 128: python '
                         'tools/analysis_tools/benchmark.py --models '
                         'vheat-t:matmul vheat-t:split --modes infer --sizes '
                         '384 512 --batch-sizes 2 --warmup 1 --repeat 3'),
            dict(path='split128_train',
                 title='A split from 128 against dense products, training '
                       'at 512 and 1024',
                 command='SPLIT_MIN_LENGTH was 128: python '
                         'tools/analysis_tools/benchmark.py --models '
                         'vheat-t:matmul vheat-t:split --modes train --sizes '
                         '512 1024 --batch-sizes 1 --warmup 1 --runs 3 '
                         '--repeat 3'),
        ]),
    dict(
        name='speed',
        title='Speed and memory against Swin-T and ConvNeXt-T',
        intro=(
            'vHeat-T in the authors\' layout (`reference`) and in ours '
            '(`auto`, the default at the time: it picked the matrix-product '
            'filter on this CPU), against mmpretrain\'s Swin-T and '
            'ConvNeXt-T. Each configuration runs in a fresh process: 2 '
            'warm-up steps, then timed steps. vHeat-T is deployed (decay '
            'tables reused) for inference and built with `img_size` equal to '
            'the resolution. These results predate the current core; see '
            '[the core against the previous implementation](core.md) for '
            'later numbers.'),
        results=[
            dict(path='infer_fp32', title='Inference, fp32',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-t:reference vheat-t:matmul swin-t '
                         'convnext-t --modes infer --dtypes fp32'),
            dict(path='train_fp32',
                 title='Training step (forward, backward, AdamW), fp32',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-t:reference vheat-t:matmul swin-t '
                         'convnext-t --modes train --sizes 224 512'),
            dict(path='infer_bf16', title='Inference, bf16 autocast',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-t:reference vheat-t:matmul swin-t '
                         'convnext-t --modes infer --dtypes bf16 '
                         '--sizes 224 1024'),
            dict(path='targets_224',
                 title='vHeat-T against the authors\' layout at 224 '
                       '(interleaved sweeps)'),
            dict(path='targets_1024',
                 title='vHeat-T against the authors\' layout at 1024 '
                       '(interleaved sweeps)'),
            dict(path='targets_1024_rerun',
                 title='The same at 1024, measured again'),
        ]),
    dict(
        name='core',
        title='The plain core against the previous implementation',
        against='d7a6935',
        intro=(
            'The rewrite that made every layer a called module, the decay '
            'tables buffers and the default filter fixed, measured against '
            'the implementation before it (named in each provenance line) '
            'in the same interleaved sweeps: `--against DIR` runs that '
            'checkout\'s code for each vHeat row. Rows ending in '
            '`@against` are the previous implementation; `+compile` '
            'rows run under `torch.compile`. Reproduce with a worktree of the '
            'old commit:\n\n'
            '```bash\n'
            'git worktree add /tmp/prev d7a6935\n'
            'python tools/analysis_tools/benchmark.py --models '
            'vheat-t:reference vheat-t:matmul \\\n'
            '    --against /tmp/prev --modes infer --sizes 224 1024 '
            '--repeat 3\n'
            'python tools/analysis_tools/benchmark.py --models '
            'vheat-t:reference vheat-t:matmul \\\n'
            '    --against /tmp/prev --modes train --sizes 224 1024 '
            '--repeat 3\n'
            '```'),
        results=[
            dict(path='core/infer_fp32', title='Inference, fp32'),
            dict(path='core/train_fp32', title='Training step, fp32'),
            dict(path='core/train_fp32_1024_rerun',
                 title='Training step at 1024, measured again on an idle '
                       'machine'),
            dict(path='core/infer_bf16_224',
                 title='Inference, bf16 autocast, 224'),
            dict(path='core/infer_bf16_224_rerun',
                 title='Inference, bf16 autocast, 224, measured again'),
            dict(path='core/infer_bf16',
                 title='Inference, bf16 autocast, 224 and 1024',
                 note='Ran while the test suite used the same cores: not '
                      'usable as a comparison.'),
            dict(path='core/train_mem_512',
                 title='Training-step memory at 512, fp32 and bf16'),
            dict(path='core/compile_224',
                 title='`torch.compile` against eager, 224',
                 command='python tools/analysis_tools/benchmark.py '
                         '--models vheat-t:matmul --compile both '
                         '--dtypes fp32 bf16 --sizes 224'),
            dict(path='core/stream.md',
                 title='A detection-style stream of image sizes',
                 command='python tools/analysis_tools/benchmark_stream.py '
                         '--against /tmp/prev --images 6 --repeat 2',
                 note='vHeat-T with `img_size=512`, eval without autograd, '
                      'one image at a time, sides drawn from 480-800, every '
                      'image a new size.'),
        ]),
    dict(
        name='dct',
        title='The even/odd split DCT',
        intro=(
            'The even/odd split against the same code with dense products '
            'and the authors\' `conv1d` form (`reference`), measured by '
            '`tools/analysis_tools/benchmark_dct.py` in one process with '
            'interleaved repeats. The rows keep the filter names of the '
            'time: `matmul` was the split filter (today\'s `split`, then by '
            'the split rule of the time), `dense` the dense products '
            '(today\'s `matmul`); `reference` is no longer in the tool. The '
            'commands below are written with today\'s names. Each '
            'cell is the median over the repeats of the median of the runs; '
            'the range is over the repeats. See [how the HCO is computed]'
            '(../hco.md) for the split itself. Ratios are the median of the '
            'per-repeat ratios, with their range. The machines were shared: '
            'where `matmul` runs the same code as `dense` (nothing splits at '
            '56x56, nor at 100x100 under autograd, nor in `deploy224`), the '
            'ratios show the noise.'),
        legend=False,
        results=[
            dict(path='dct/filter',
                 title='The heat filter alone (DCT, damp, IDCT), no autograd',
                 command='python tools/analysis_tools/benchmark_dct.py '
                         '--cases --repeat 5 --runs 5'),
            dict(path='dct/filter_grad',
                 title='The heat filter, forward and backward',
                 command='python tools/analysis_tools/benchmark_dct.py '
                         '--cases --grad --repeat 5 --runs 3'),
            dict(path='dct/filter_compile',
                 title='The heat filter, each form compiled',
                 command='python tools/analysis_tools/benchmark_dct.py '
                         '--cases --compile --repeat 3 --runs 5'),
            dict(path='dct/models', title='vHeat-T cases',
                 command='python tools/analysis_tools/benchmark_dct.py '
                         '--sizes --repeat 5 --runs 3'),
            dict(path='dct/models_rerun', title='vHeat-T cases, measured '
                 'again without the reference',
                 command='python tools/analysis_tools/benchmark_dct.py '
                         '--sizes --impls matmul split --repeat 9 --runs 3'),
            dict(path='dct/models_malloc',
                 title='vHeat-T cases with glibc told to keep freed memory',
                 note='Run with `MALLOC_MMAP_THRESHOLD_=4294967296 '
                      'MALLOC_TRIM_THRESHOLD_=68719476736`, to take page '
                      'faults out of the comparison.',
                 command='MALLOC_MMAP_THRESHOLD_=4294967296 '
                         'MALLOC_TRIM_THRESHOLD_=68719476736 '
                         'python tools/analysis_tools/benchmark_dct.py '
                         '--sizes --impls matmul split --repeat 5 --runs 3'),
            dict(path='dct/compile_1024',
                 title='Compiled vHeat-T at 1024, dense against split',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t:matmul vheat-t:split --compile on '
                         '--sizes 1024 --repeat 2'),
        ]),
    dict(
        name='deploy',
        title='ONNX Runtime against PyTorch',
        intro=(
            'The vHeat-T classifier with the same weights, fp32 on the CPU: '
            'PyTorch eager (deployed, tables reused), the dynamic ONNX file '
            'in ONNX Runtime (`@ort`) and the fixed-size file with the decay '
            'tables baked in (`@ort-fixed`). The memory columns are not '
            'comparable for the ONNX Runtime rows (the export runs in the '
            'same process).'),
        results=[
            dict(path='deploy_224', title='224, batch 8',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t:matmul --backend pytorch onnxruntime '
                         'onnxruntime-fixed --sizes 224 --repeat 2'),
            dict(path='deploy_512', title='512, batch 2',
                 command='python tools/analysis_tools/benchmark.py --models '
                         'vheat-t:matmul --backend pytorch onnxruntime '
                         'onnxruntime-fixed --sizes 512 --repeat 2'),
        ]),
]


# ---------------------------------------------------------------- helpers


def fmt(value, digits=3):
    """A number with ``digits`` significant digits, or "-" for None."""
    if value is None:
        return '-'
    if isinstance(value, str):
        return value
    if value == 0:
        return '0'
    return f'{value:.{digits}g}' if abs(value) < 10 ** digits \
        else f'{value:.0f}'


def fmt_range(values, digits=3):
    if not values:
        return '-'
    lo, hi = min(values), max(values)
    return f'{fmt(lo, digits)}-{fmt(hi, digits)}'


def md_table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    for row in rows:
        lines.append('| ' + ' | '.join(str(c) for c in row) + ' |')
    return '\n'.join(lines)


def _last_commit(path, fmt):
    """``git log -1 --format=FMT`` of ``path``, or None."""
    try:
        out = subprocess.run(
            ['git', 'log', '-1', f'--format={fmt}', '--',
             osp.basename(path)],
            cwd=osp.dirname(path), capture_output=True, text=True,
            timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and value else None


def commit_date(path):
    """The date git last committed ``path``, or None."""
    return _last_commit(path, '%cs')


def commit_id(path):
    """The short id of the commit that last changed ``path``, or None."""
    return _last_commit(path, '%h')


def provenance(meta, rows, path, spec=None):
    """A line of where, when and at which commit a result was measured
    (``spec['commit']``, else the commit that last changed the result
    file) and, for results with ``@against`` rows, the commit those ran
    (``spec['against']``)."""
    meta, spec = meta or {}, spec or {}
    cpu = meta.get('cpu') or meta.get('cpu_model')
    machine = meta.get('machine')
    cores = meta.get('cores') or meta.get('cpu_count')
    devices = sorted({r.get('device') for r in rows if r.get('device')})
    date = meta.get('date')
    if not date:
        committed = commit_date(path)
        date = NOT_RECORDED + (f' (committed {committed})'
                               if committed else '')
    items = [
        ('CPU model', cpu or (f'{NOT_RECORDED} (architecture {machine})'
                              if machine else NOT_RECORDED)),
        ('cores', cores or NOT_RECORDED),
        ('threads', meta.get('threads') or NOT_RECORDED),
        ('torch', meta.get('torch') or NOT_RECORDED),
        ('device', ', '.join(devices) if devices else
         meta.get('device', NOT_RECORDED)),
        ('date', date),
    ]
    extra = [(k, meta[k]) for k in ('repeat', 'runs', 'channels', 'batch',
                                    'split_min_length') if k in meta]
    commit = spec.get('commit') or commit_id(path)
    if commit:
        extra.append(('commit', commit))
    if spec.get('against') and (not rows or any(
            '@against' in str(r.get('model')) for r in rows)):
        extra.append(('`@against` rows', f'commit {spec["against"]}'))
    cells = [f'{k}: {v}' for k, v in items + extra]
    return '*Measured on* ' + '; '.join(cells) + '.'


def save_figure(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={'Software': None})
    import matplotlib.pyplot as plt
    plt.close(fig)


# ------------------------------------------- benchmark.py (list of rows)


def row_img_per_s_range(row):
    """Throughput over the timed runs: (lowest, highest)."""
    times = [t for t in row.get('times', []) if t]
    if not times:
        return None
    return row['batch'] / max(times), row['batch'] / min(times)


def config_key(row):
    return (row['mode'], row['dtype'], row['resolution'], row['batch'])


def config_label(key):
    mode, dtype, res, batch = key
    return f'{mode} {dtype}\n{res}px, b{batch}'


def rows_table(rows):
    has_ref = any('x_ref' in r for r in rows)
    has_prev = any('x_prev' in r for r in rows)
    has_sweeps = any(len(r.get('sweep_img_per_s', [])) > 1 for r in rows)
    # Columns that hold one value for every row are said once, above.
    varying = [k for k in ('mode', 'dtype', 'resolution', 'batch')
               if len({r[k] for r in rows}) > 1]
    names = dict(mode='mode', dtype='dtype', resolution='input',
                 batch='batch')
    header = ['model'] + [names[k] for k in varying] + [
        'img/s (median)', 'runs range']
    if has_sweeps:
        header.append('sweeps (img/s)')
    has_peak = any('peak_frac' in r for r in rows)
    if has_peak:
        header += ['GFLOP/s', '% of GEMM peak']
    header += ['step memory MB']
    if has_ref:
        header.append('vs reference')
    if has_prev:
        header.append('vs previous commit')
    out = []
    for r in rows:
        rng = row_img_per_s_range(r)
        cells = [f'`{r["model"]}`'] + [r[k] for k in varying] + [
                 fmt(r.get('img_per_s')) if not r.get('error') else
                 f'error: {r["error"]}',
                 fmt_range(rng) if rng else '-']
        if has_sweeps:
            sweeps = r.get('sweep_img_per_s', [])
            cells.append(', '.join(fmt(s) for s in sweeps) if sweeps
                         else '-')
        if has_peak:
            cells += [fmt(r.get('gflops')),
                      f'{r["peak_frac"] * 100:.0f}%' if 'peak_frac' in r
                      else '-']
        cells.append(fmt(r.get('step_mem_mb'), 4))
        if has_ref:
            cells.append(f'{r["x_ref"]:.2f}x' if 'x_ref' in r else '-')
        if has_prev:
            cells.append(f'{r["x_prev"]:.2f}x' if 'x_prev' in r else '-')
        out.append(cells)
    fixed = [f'{names[k]} {rows[0][k]}' for k in
             ('mode', 'dtype', 'resolution', 'batch') if k not in varying]
    lead = f'All rows: {", ".join(fixed)}.\n\n' if fixed else ''
    return lead + md_table(header, out)


def rows_plot(rows, title, path):
    import matplotlib.pyplot as plt
    keys = []
    for r in rows:
        if config_key(r) not in keys:
            keys.append(config_key(r))
    models = []
    for r in rows:
        if r['model'] not in models:
            models.append(r['model'])
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 1.3 * len(keys)), 3.6))
    cmap = plt.get_cmap('tab10')
    for i, model in enumerate(models):
        for j, key in enumerate(keys):
            match = [r for r in rows
                     if r['model'] == model and config_key(r) == key]
            if not match or not match[0].get('img_per_s'):
                continue
            r = match[0]
            x = j + (i - (len(models) - 1) / 2) * width
            # Normalise within a configuration: the first model is 1.0.
            base = [b for b in rows if config_key(b) == key
                    and b['model'] == models[0] and b.get('img_per_s')]
            scale = base[0]['img_per_s'] if base else r['img_per_s']
            rng = row_img_per_s_range(r)
            ax.bar(x, r['img_per_s'] / scale, width * 0.9, color=cmap(i % 10),
                   label=model if j == keys.index(config_key(r)) and
                   model not in ax.get_legend_handles_labels()[1] else None)
            if rng:
                ax.plot([x, x], [rng[0] / scale, rng[1] / scale],
                        color='black', lw=1.2)
            sweeps = r.get('sweep_img_per_s', [])
            if len(sweeps) > 1:
                ax.plot([x] * len(sweeps), [s / scale for s in sweeps], 'o',
                        ms=3, color='black', mfc='white')
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([config_label(k) for k in keys], fontsize=8)
    ax.set_ylabel(f'img/s relative to\n{models[0]}', fontsize=8)
    ax.axhline(1.0, color='grey', lw=0.6, ls='--')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path)


def time_shares_table(rows):
    """Where each profiled row's time went (``benchmark.py --profile``),
    or '' when no row was profiled."""
    rows = [r for r in rows if r.get('time_shares')]
    if not rows:
        return ''
    kinds = []
    for r in rows:
        kinds += [k for k in r['time_shares']
                  if k != 'total_ms' and k not in kinds]
    header = ['model', 'mode', 'dtype', 'profiled ms'] + kinds
    body = [[f'`{r["model"]}`', r['mode'], r['dtype'],
             fmt(r['time_shares']['total_ms'])]
            + [f'{r["time_shares"].get(k, 0) * 100:.0f}%' for k in kinds]
            for r in rows]
    return ('Where the time goes: the self time of the ops of one profiled '
            'step (`torch.profiler`), by kind of work. Work done outside '
            'PyTorch\'s ops (ONNX Runtime, most of an AOTInductor package) '
            'is not seen by the profiler.\n\n' + md_table(header, body))


def roofline_plot(rows, title, path):
    """Bars: each row's achieved GFLOP/s as a fraction of the GEMM peak
    of its dtype, grouped by configuration."""
    import matplotlib.pyplot as plt
    rows = [r for r in rows if 'peak_frac' in r]
    keys = list(dict.fromkeys(config_key(r) for r in rows))
    models = list(dict.fromkeys(r['model'] for r in rows))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 + 1.5 * len(keys)), 3.8))
    cmap = plt.get_cmap('tab10')
    for i, model in enumerate(models):
        xs, ys = [], []
        for j, key in enumerate(keys):
            match = [r for r in rows
                     if r['model'] == model and config_key(r) == key]
            if match:
                xs.append(j + (i - (len(models) - 1) / 2) * width)
                ys.append(100 * match[0]['peak_frac'])
        ax.bar(xs, ys, width * 0.9, color=cmap(i % 10), label=model)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([config_label(k) for k in keys], fontsize=8)
    ax.set_ylabel('% of the GEMM peak\n(same run, same dtype)', fontsize=8)
    ax.axhline(100, color='grey', lw=0.6, ls='--')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path)


def peak_line(meta):
    """The GEMM peaks and FLOP counts a roofline result was measured
    against, as a sentence."""
    peaks = meta.get('gemm_peak_gflops') or {}
    macs = meta.get('macs_per_image') or {}
    if not peaks:
        return ''
    counts = {}
    for key, value in macs.items():
        spec, _, res = key.rpartition('@')
        name = spec.split(':')[0].split('+')[0]
        counts.setdefault(f'{name} at {res}', value)
    per_sweep = all(isinstance(g, list) for g in peaks.values())
    if per_sweep:
        how = ('in each sweep (best large square `torch.mm`; each row\'s % '
               'is against its own sweep\'s peak)')
    else:  # files written before the peak was kept per sweep
        how = ('as the median over the sweeps (best large square '
               '`torch.mm`; every row\'s % is against it)')

    def rates(found):
        found = found if isinstance(found, list) else [found]
        return ' / '.join(f'{g:.0f}' for g in found)

    return (f'GEMM peak measured in the same run, {how}: '
            + ', '.join(f'{d} {rates(g)} GFLOP/s'
                        for d, g in peaks.items())
            + '. Multiply-adds per image (FLOPs tool, one count per '
            'architecture): ' + ', '.join(f'{k} {v / 1e9:.2f} G'
                                          for k, v in counts.items())
            + '. GFLOP/s = 2 x multiply-adds x img/s, x3 for a training '
            'step.')


# -------------------------------------- benchmark_dct.py (cases x impls)


def cases_of(data):
    for key in ('filter', 'models'):
        if key in data:
            return data[key]
    return {}


def ratio_stats(case, num, den):
    """Median and range of the per-repeat ratios den / num (a speed-up)."""
    a = case['repeats'].get(num)
    b = case['repeats'].get(den)
    if not a or not b:
        return None
    ratios = [y / x for x, y in zip(a, b)]
    return statistics.median(ratios), min(ratios), max(ratios)


def dct_table(data):
    cases = cases_of(data)
    impls = []
    for case in cases.values():
        for impl in case['ms']:
            if impl not in impls:
                impls.append(impl)
    header = ['case'] + [f'{i} ms (range)' for i in impls]
    pairs = [('matmul', d) for d in ('dense', 'reference') if d in impls]
    header += [f'{a} vs {b}' for a, b in pairs]
    rows = []
    for name, case in cases.items():
        cells = [name]
        for impl in impls:
            if impl in case['ms']:
                cells.append(f'{fmt(case["ms"][impl])} '
                             f'({fmt_range(case["repeats"][impl])})')
            else:
                cells.append('-')
        for a, b in pairs:
            stats = ratio_stats(case, a, b)
            cells.append('-' if stats is None else
                         f'{stats[0]:.2f}x ({stats[1]:.2f}-{stats[2]:.2f})')
        rows.append(cells)
    return md_table(header, rows)


def dct_plot(data, title, path):
    import matplotlib.pyplot as plt
    cases = cases_of(data)
    names = list(cases)
    impls = []
    for case in cases.values():
        for impl in case['ms']:
            if impl not in impls:
                impls.append(impl)
    width = 0.8 / max(len(impls), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 1.0 * len(names)), 3.4))
    cmap = plt.get_cmap('tab10')
    for i, impl in enumerate(impls):
        for j, name in enumerate(names):
            case = cases[name]
            if impl not in case['ms']:
                continue
            x = j + (i - (len(impls) - 1) / 2) * width
            ax.bar(x, case['ms'][impl], width * 0.9, color=cmap(i % 10),
                   label=impl if j == 0 else None)
            reps = case['repeats'][impl]
            ax.plot([x, x], [min(reps), max(reps)], color='black', lw=1.2)
    ax.set_yscale('log')
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8, rotation=20)
    ax.set_ylabel('ms per call (log)', fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)


# ------------------------------- the table the benchmarks index opens with

# docs/en/notes/benchmarks.md includes SUMMARY_PAGE from the output folder:
# each model of the same size against the others, per setting, from the
# results of the roofline page. A cell gathers every row that ran the
# model's default code in that setting (``same_code`` names the specs that
# did, under another name), so it shows their range when there are several.
SUMMARY_PAGE = 'summary.md'
SUMMARY = dict(
    results=['roofline/infer_eager', 'roofline/infer_compiled',
             'roofline/train_eager', 'roofline/train_memory',
             'roofline/train_compiled', 'roofline/small'],
    families=[[('vheat-t', 'vHeat-T'), ('swin-t', 'Swin-T'),
               ('convnext-t', 'ConvNeXt-T')],
              [('vheat-s', 'vHeat-S'), ('swin-s', 'Swin-S'),
               ('convnext-s', 'ConvNeXt-S')]],
    # vheat-t+nocp named the default (no checkpointing) explicitly
    same_code={'vheat-t+nocp': 'vheat-t'},
)


def summary_rows(results_dir):
    """(rows, metas, paths) of the summary's results that exist; each row
    gets ``base`` (the model it measures) and ``compiled``."""
    rows, metas, paths = [], [], []
    for rel in SUMMARY['results']:
        path = osp.join(results_dir, rel, 'results.json')
        if not osp.exists(path):
            continue
        with open(path) as f:
            data = json.load(f)
        meta_path = osp.join(results_dir, rel, 'meta.json')
        if osp.exists(meta_path):
            with open(meta_path) as f:
                metas.append(json.load(f))
        paths.append(path)
        for r in data:
            spec = SUMMARY['same_code'].get(r['model'], r['model'])
            compiled = spec.endswith('+compile')
            base = spec[:-len('+compile')] if compiled else spec
            if ('@' in base or '+' in base or r.get('error')
                    or not r.get('img_per_s')):
                continue  # another checkout, backend or option; a failure
            rows.append(dict(r, base=base, compiled=compiled))
    return rows, metas, paths


def summary_settings(rows):
    keys = {(r['mode'], r['compiled'], r['resolution'], r['batch'],
             r['dtype']) for r in rows}
    order = dict(infer=0, train=1)
    return sorted(keys, key=lambda k: (order.get(k[0], 2), k[1], k[2],
                                       k[4] != 'fp32'))


def setting_label(key):
    mode, compiled, res, batch, dtype = key
    what = 'inference' if mode == 'infer' else 'training step'
    how = '`torch.compile`' if compiled else 'eager'
    return f'{what}, {how}, {dtype}, {res}px batch {batch}'


def summary_cell(rows):
    if not rows:
        return '-'
    rates = [r['img_per_s'] for r in rows]
    fracs = [100 * r['peak_frac'] for r in rows if 'peak_frac' in r]
    # three significant digits of the lowest rate, the same decimals for all
    places = max(0, 2 - math.floor(math.log10(min(rates))))
    rate = '-'.join(dict.fromkeys(f'{v:.{places}f}'
                                  for v in (min(rates), max(rates))))
    if not fracs:
        return rate
    frac = (f'{min(fracs):.0f}%' if max(fracs) - min(fracs) < 0.5 else
            f'{min(fracs):.0f}-{max(fracs):.0f}%')
    return f'{rate} ({frac})'


def summary_plot(rows, models, settings, path):
    """Bars: % of the GEMM peak per setting and model (range as a line)."""
    import matplotlib.pyplot as plt
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 1.1 * len(settings)),
                                    3.8))
    cmap = plt.get_cmap('tab10')
    for i, (model, name) in enumerate(models):
        for j, key in enumerate(settings):
            fracs = [100 * r['peak_frac'] for r in rows
                     if r['base'] == model and r.get('peak_frac')
                     and summary_key(r) == key]
            if not fracs:
                continue
            x = j + (i - (len(models) - 1) / 2) * width
            ax.bar(x, statistics.median(fracs), width * 0.9,
                   color=cmap(i % 10), label=name if j == min(
                       jj for jj, k in enumerate(settings)
                       if any(r['base'] == model and summary_key(r) == k
                              for r in rows)) else None)
            if len(fracs) > 1:
                ax.plot([x, x], [min(fracs), max(fracs)], color='black',
                        lw=1.2)
    labels = []
    for mode, compiled, res, batch, dtype in settings:
        labels.append(f'{"infer" if mode == "infer" else "train"} '
                      f'{dtype}\n{"compiled" if compiled else "eager"} '
                      f'{res}px')
    ax.set_xticks(range(len(settings)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel('% of the GEMM peak\n(same run, same dtype)', fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_title('Achieved GFLOP/s as a fraction of the machine\'s GEMM '
                 'peak', fontsize=9)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path)


def summary_key(row):
    return (row['mode'], row['compiled'], row['resolution'], row['batch'],
            row['dtype'])


def unique(values):
    return ', '.join(str(v) for v in dict.fromkeys(
        v for v in values if v is not None)) or NOT_RECORDED


def write_summary(results_dir, out_dir):
    """The summary table, plot and provenance line, as a Markdown
    fragment for docs/en/notes/benchmarks.md (paths relative to it)."""
    rows, metas, paths = summary_rows(results_dir)
    lines = ['<!-- Generated by docs/en/_scripts/benchmark_pages.py from '
             'docs/benchmark/; do not edit. -->', '']
    found = [fam for fam in SUMMARY['families']
             if any(r['base'] == fam[0][0] for r in rows)]
    missing = [fam for fam in SUMMARY['families'] if fam not in found]
    if not found:
        lines += ['No summary results are recorded yet.', '']
    else:
        lines += [
            f'On a CPU ({unique(m.get("cpu") for m in metas)}, '
            f'{unique(m.get("cores") for m in metas)} cores, '
            f'{unique(m.get("threads") for m in metas)} threads), torch '
            f'{unique(m.get("torch") for m in metas)}: images per second, '
            'and in brackets the fraction of the machine\'s GEMM peak '
            'reached.', '']
    for models in found:
        # settings that compare: at least two of the models have a row
        family = [r for r in rows if r['base'] in dict(models)]
        settings = [key for key in summary_settings(family) if len(
            {r['base'] for r in family if summary_key(r) == key}) > 1]
        header = ['setting'] + [name for _, name in models]
        body = [[setting_label(key)] + [
            summary_cell([r for r in rows if r['base'] == model
                          and summary_key(r) == key])
            for model, _ in models] for key in settings]
        lines += [md_table(header, body), '']
        png = f'summary_{models[0][0]}.png'
        summary_plot(rows, models, settings, osp.join(out_dir, png))
        names = ', '.join(name for _, name in models)
        lines += [f'```{{figure}} benchmarks/{png}',
                  f':alt: % of the GEMM peak, {names}', '',
                  'Achieved GFLOP/s as a fraction of the GEMM peak of the '
                  'same dtype, measured in the same run; a line spans the '
                  'rows of one setting when there are several.', '```', '']
    if missing:
        names = ', '.join(n for fam in missing for _, n in fam)
        lines += [f'No rows are recorded for {names} yet '
                  '(`benchmark.py --models vheat-s swin-s convnext-s`).',
                  '']
    peaks = {}
    for meta in metas:
        for dtype, g in (meta.get('gemm_peak_gflops') or {}).items():
            peaks.setdefault(dtype, []).extend(
                g if isinstance(g, list) else [g])
    commits = unique(commit_id(p) for p in paths)
    lines += [
        'Each cell: images per second, and in brackets the achieved '
        'GFLOP/s (2 x multiply-adds x img/s, three times that '
        'for a training step) as a fraction of the GEMM peak of the same '
        'dtype measured in the same run; a range where several recorded '
        'rows ran the same code in that setting. bf16 runs under '
        '`torch.autocast`; the tool records it only on CPUs with native '
        'bf16 (`avx512_bf16` or `amx_bf16`). Training rows are a forward, '
        'cross-entropy, backward and AdamW step with the defaults (no '
        'activation checkpointing); vHeat\'s inference rows are deployed '
        '(`switch_to_deploy()`); compiled inference uses inductor\'s '
        '`freezing`.' + (' GEMM peaks over these runs: ' + ', '.join(
            f'{d} {min(g):.0f}-{max(g):.0f} GFLOP/s'
            for d, g in peaks.items()) + '.' if peaks else ''), '',
        'Recorded with `tools/analysis_tools/benchmark.py` on '
        f'{unique(m.get("date") for m in metas)} at commit {commits} '
        '(`docs/benchmark/roofline/`). Every row, the commands and where '
        'the time goes: [against the machine\'s limit]'
        '(benchmarks/roofline.md).', '']
    with open(osp.join(out_dir, SUMMARY_PAGE), 'w') as f:
        f.write('\n'.join(lines).rstrip() + '\n')
    return osp.join(out_dir, SUMMARY_PAGE)


# ------------------------------------------------------------------ pages


def slug(path):
    return path.replace('/', '_').replace('.', '_')


def command_block(spec):
    """The command of a result; one that today's tools no longer take says
    why, in the page and in a marker for the docs test."""
    if not spec.get('skip_test'):
        return ['```bash', spec['command'], '```', '']
    return [f'The command as recorded ({spec["skip_test"]}):', '',
            f'<!-- skip-test: {spec["skip_test"]} -->',
            '```bash', spec['command'], '```', '']


def result_section(spec, results_dir, out_dir):
    src = osp.join(results_dir, spec['path'])
    lines = [f'## {spec["title"]}', '']
    rel = osp.join('docs', 'benchmark', spec['path'])
    if src.endswith('.md'):
        if not osp.exists(src):
            return lines + [f'Result file `{rel}` is missing.', '']
        lines += [provenance({}, [], src, spec), '']
        if spec.get('note'):
            lines += [spec['note'], '']
        with open(src) as f:
            lines += [f.read().strip(), '']
        if spec.get('command'):
            lines += command_block(spec)
        lines += [f'Data: `{rel}`.', '']
        return lines
    json_path = osp.join(src, 'results.json')
    if not osp.exists(json_path):
        return lines + [f'Result file `{rel}/results.json` is missing.', '']
    with open(json_path) as f:
        data = json.load(f)
    png = slug(spec['path']) + '.png'
    if isinstance(data, list):
        meta_path = osp.join(src, 'meta.json')
        meta = {}
        if osp.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
        lines += [provenance(meta, data, json_path, spec), '']
        if spec.get('note'):
            lines += [spec['note'], '']
        if peak_line(meta):
            lines += [peak_line(meta), '']
        lines += [rows_table(data), '']
        if time_shares_table(data):
            lines += [time_shares_table(data), '']
        if spec.get('plot') == 'roofline':
            roofline_plot(data, spec['title'], osp.join(out_dir, png))
            caption = ('Achieved GFLOP/s as a fraction of the GEMM peak of '
                       'the same dtype, measured in the same run.')
        else:
            rows_plot(data, spec['title'], osp.join(out_dir, png))
            caption = ('Throughput relative to the first model of each '
                       'configuration: bars are medians, lines the range '
                       'over the timed runs, dots the interleaved sweeps.')
    else:
        lines += [provenance(data.get('meta'), [], json_path, spec), '']
        if spec.get('note'):
            lines += [spec['note'], '']
        lines += [dct_table(data), '']
        dct_plot(data, spec['title'], osp.join(out_dir, png))
        caption = ('Median time per call (log scale); lines give the range '
                   'over the repeats.')
    lines += [f'```{{figure}} {png}', f':alt: {spec["title"]}', '',
              caption, '```', '']
    if spec.get('command'):
        lines += ['Reproduce:', ''] + command_block(spec)
    lines += [f'Data: `{rel}/results.json`.', '']
    return lines


LEGEND = """\
How to read these tables: *img/s (median)* is the median throughput over
the timed runs of a sweep; when the benchmark ran several interleaved sweeps
(`--repeat`), it is that of the sweep with the median throughput (the faster
of two). *runs range* is the lowest and highest throughput of those runs, and
*sweeps* lists every sweep's throughput in sweep order. Ratios (`vs
reference`, `vs previous commit`) are taken within one sweep. The machines
were shared, so compare rows of one result only, and read every ratio as a
range.
"""


def write_page(page, results_dir, out_dir):
    lines = [
        '<!-- Generated by docs/en/_scripts/benchmark_pages.py from '
        'docs/benchmark/; do not edit. -->', '',
        f'# {page["title"]}', '', page['intro'], '']
    if page.get('legend', True):
        lines += [LEGEND, '']
    for spec in page['results']:
        spec = dict(spec, against=page.get('against'))
        lines += result_section(spec, results_dir, out_dir)
    text = '\n'.join(lines).rstrip() + '\n'
    path = osp.join(out_dir, page['name'] + '.md')
    with open(path, 'w') as f:
        f.write(text)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    here = osp.dirname(osp.abspath(__file__))
    root = osp.dirname(osp.dirname(osp.dirname(here)))
    parser.add_argument('--results',
                        default=osp.join(root, 'docs', 'benchmark'),
                        help='folder of committed results')
    parser.add_argument('--out',
                        default=osp.join(root, 'docs', 'en', 'notes',
                                         'benchmarks'),
                        help='folder the pages and plots are written to '
                             '(its .md and .png files are replaced)')
    args = parser.parse_args(argv)
    os.environ.setdefault('MPLBACKEND', 'Agg')
    os.makedirs(args.out, exist_ok=True)
    for name in os.listdir(args.out):
        if name.endswith(('.md', '.png')):
            os.remove(osp.join(args.out, name))
    written = [write_page(page, args.results, args.out) for page in PAGES]
    written.append(write_summary(args.results, args.out))
    print(f'benchmark pages: {len(written)} pages written to {args.out}',
          file=sys.stderr)
    return written


if __name__ == '__main__':
    main()
