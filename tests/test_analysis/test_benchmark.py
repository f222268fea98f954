"""The benchmark script, end to end on one tiny configuration."""
import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers.paths import REPO_ROOT
from mmvheat.analysis.benchmark import (
    achieved,
    compiled,
    gemm_peak,
    model_macs,
    native_dtypes,
    parse_spec,
    run_config,
    time_kind,
    time_shares,
)

BENCH = os.path.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark.py')


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, BENCH, '--models',
         'vheat-t:reference', 'vheat-t:matmul', 'swin-t', '--modes',
         'infer', 'train', '--sizes', '64', '--batch-sizes', '1',
         '--warmup', '0', '--runs', '2', '--threads', '1', '--out-dir',
         str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / 'results.json').read_text())
    assert len(results) == 6
    for r in results:
        assert 'error' not in r, r
        assert r['img_per_s'] > 0 and len(r['times']) == 2
        assert r['peak_mem_mb'] > r['step_mem_mb'] >= 0
        assert r['gflops'] > 0 and 0 < r['peak_frac'] < 2
    meta = json.loads((tmp_path / 'meta.json').read_text())
    peak, = meta['gemm_peak_gflops']['fp32']  # one sweep, one peak
    for r in results:  # one FLOP count per arch and size, x3 in training
        macs = meta['macs_per_image'][r['model'] + '@64']
        passes = 3 if r['mode'] == 'train' else 1
        assert r['gflops'] == pytest.approx(
            2 * macs * passes * r['img_per_s'] / 1e9)
        assert r['peak_frac'] == pytest.approx(r['gflops'] / peak)
    macs = meta['macs_per_image']
    assert macs['vheat-t:reference@64'] == macs['vheat-t:matmul@64']
    assert 'GEMM peak (best large square torch.mm, measured in each ' \
        f'sweep): fp32 {peak:.0f} GFLOP/s' in out.stdout
    ref = [r for r in results if r['model'] == 'vheat-t:reference']
    assert [r['x_ref'] for r in ref] == [1.0, 1.0]
    ours = [r for r in results if r['model'] == 'vheat-t:matmul']
    assert all(r['x_ref'] > 0 for r in ours)
    assert 'x_ref' not in [r for r in results
                           if r['model'] == 'swin-t'][0]
    rows = list(csv.DictReader(open(tmp_path / 'results.csv')))
    assert len(rows) == 6 and rows[0]['model'] == 'vheat-t:reference'
    assert (tmp_path / 'benchmark.png').stat().st_size > 10000
    assert '| vheat-t:matmul ' in out.stdout and 'img/s' in out.stdout


def test_bad_model_spec():
    out = subprocess.run(
        [sys.executable, BENCH, '--models',
         'vheat-x'], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown model 'vheat-x'" in out.stderr
    with pytest.raises(ValueError, match='only vheat models take an :IMPL'):
        parse_spec('swin-t:fft')
    with pytest.raises(ValueError, match='IMPL must be one of'):
        parse_spec('vheat-s:conv')
    with pytest.raises(ValueError, match='the options are [+]sac and'):
        parse_spec('vheat-t+cp')
    assert parse_spec('vheat-t+sac') == ('vheat', 'tiny', 'split+sac')


def test_roofline_pieces():
    """The GEMM peak is the best shape's rate; achieved GFLOP/s counts
    2 FLOP per multiply-add and three passes for a training step."""
    peak = gemm_peak('fp32', shapes=(64, 128), runs=2)
    assert set(peak['per_shape']) == {64, 128}
    assert peak['gflops'] == max(peak['per_shape'].values()) > 0
    row = dict(mode='infer', img_per_s=10.0)
    assert achieved(row, 4e9, 160.0) == dict(macs=4e9, gflops=80.0,
                                             peak_frac=0.5)
    assert achieved(dict(row, mode='train'), 4e9)['gflops'] == 240.0
    assert 'peak_frac' not in achieved(row, 4e9)
    assert native_dtypes('cpu')[0] == 'fp32'
    # every implementation of an arch is charged the same count
    assert model_macs('vheat-t:split', 64) == model_macs('vheat-t+sac', 64)


def test_time_shares_by_kind():
    """The profile splits a step's time into kinds of work; a step of
    one large product and one addition is mostly products."""
    assert [time_kind(n) for n in ('aten::addmm', 'aten::native_layer_norm',
                                   'aten::gelu', 'aten::copy_',
                                   'cpp_fused_native_layer_norm_0',
                                   'aten::view')] == [
        'products', 'norms', 'elementwise', 'copies', 'fused (compiled)',
        'other']
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    shares = time_shares(lambda: torch.mm(a, b) + 1, torch.device('cpu'))
    assert shares['products'] > 0.5 and shares['total_ms'] > 0
    assert sum(v for k, v in shares.items() if k != 'total_ms') == \
        pytest.approx(1.0)


@pytest.mark.slow  # one inductor compile
def test_frozen_compile_packs_linear_layers():
    """``compiled(freeze=True)`` really freezes (the linear layer runs as a
    packed MKL product, not ``addmm``), equals eager, and leaves inductor's
    global config as it was."""
    from torch.profiler import profile
    model = torch.nn.Sequential(torch.nn.LayerNorm(32),
                                torch.nn.Linear(32, 64)).eval()
    fn = compiled(model, freeze=True)
    x = torch.randn(2, 5, 7, 32)
    with torch.no_grad():
        out = fn(x)
        with profile() as prof:
            fn(x)
        assert (out - model(x)).abs().max() < 1e-5
    names = {e.key for e in prof.key_averages()}
    if torch._C.has_mkl:
        assert 'aten::addmm' not in names
    assert not torch._inductor.config.freezing


def test_run_config_rejects_bad_mode():
    with pytest.raises(ValueError, match="mode must be 'infer' or 'train'"):
        run_config('vheat-t', 'eval', 'fp32', 64, 1)
    with pytest.raises(ValueError,
                       match='aoti rows: vheat models, infer, fp32, cpu'):
        run_config('vheat-t', 'infer', 'bf16', 64, 1, backend='aoti')


def test_repeats_take_the_median_sweep():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'bench_tool', BENCH)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    runs = [dict(img_per_s=v, tag=v) for v in (3.0, 1.0, 2.0)]
    merged = tool.merge_repeats(runs)
    assert merged['tag'] == 2.0
    assert merged['sweep_img_per_s'] == [3.0, 1.0, 2.0]  # sweep order
    merged = tool.merge_repeats(runs + [dict(error='timeout')])
    assert merged['sweep_img_per_s'] == [3.0, 1.0, 2.0, None]
    assert tool.merge_repeats([dict(error='x')]) == dict(error='x')


def _load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('bench_tool', BENCH)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_compile_and_against_rows_and_ratios(tmp_path):
    tool = _load_tool()
    args = tool.parse_args(['--models', 'vheat-t:reference', 'vheat-t',
                            'swin-t', '--compile', 'both', '--against',
                            str(tmp_path)])
    names = [v[0] for v in tool.variants(args)]
    assert names == [
        'vheat-t:reference', 'vheat-t:reference+compile',
        'vheat-t:reference@against', 'vheat-t:reference@against+compile',
        'vheat-t', 'vheat-t+compile', 'vheat-t@against',
        'vheat-t@against+compile', 'swin-t', 'swin-t+compile']
    assert {v[3] for v in tool.variants(args)} == {tool.ROOT, str(tmp_path)}
    common = dict(mode='infer', dtype='fp32', resolution=64, batch=1)
    common.update(median_s=1.0, spread=0.0, peak_mem_mb=500.)
    results = [dict(model=m, img_per_s=v, step_mem_mb=mem, **common)
               for m, v, mem in [('vheat-t:reference', 1.0, 100.),
                                 ('vheat-t', 3.0, 50.),
                                 ('vheat-t@against', 2.0, 80.),
                                 ('vheat-t+compile', 4.0, 40.)]]
    tool.add_ratios(results)
    ours = results[1]
    assert ours['x_ref'] == 3.0 and ours['mem_x_ref'] == 0.5
    assert ours['x_prev'] == 1.5 and ours['mem_x_prev'] == 50. / 80.
    assert 'x_prev' not in results[2] and 'x_prev' not in results[3]
    table = tool.format_table(results)
    assert '| 1.500 ' in table and 'x prev' in table


@pytest.mark.slow
def test_stream_benchmark_prints_both_checkouts():
    tool = os.path.join(REPO_ROOT, 'tools', 'analysis_tools',
                        'benchmark_stream.py')
    out = subprocess.run(
        [sys.executable, tool, '--img-size', '64', '--images', '2',
         '--min-side', '33', '--max-side', '70', '--repeat', '1',
         '--against', REPO_ROOT], capture_output=True, text=True,
        timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines()
            if line.startswith('| vheat-t | this checkout') or
            line.startswith('| vheat-t | against')]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert float(cells[2]) > 0 and float(cells[4]) > 0


def test_dct_benchmark_tables(tmp_path, capsys):
    """benchmark_dct.py: the filter table with each implementation and the
    speed-ups (median of per-repeat ratios, with their range), the depth
    sweep, and the results files."""
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location(
        'benchmark_dct',
        f'{REPO_ROOT}/tools/analysis_tools/benchmark_dct.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(['--sizes', '12', '9x20', '--cases', '--channels', '4',
               '--impls', 'matmul', 'split', 'fft', '--repeat', '2',
               '--runs', '1', '--out-dir', str(tmp_path)])
    out = capsys.readouterr().out
    assert ('| case | matmul ms | split ms | fft ms | split vs matmul '
            '| fft vs matmul |') in out
    rows = [r for r in out.splitlines() if r.startswith(('| 12x12', '| 9x20'))]
    assert len(rows) == 2 and all(r.count('x (') == 2 for r in rows)
    res = json.loads((tmp_path / 'results.json').read_text())
    assert set(res['filter']) == {'12x12', '9x20'}
    assert all(len(v) == 2 for v in res['filter']['9x20']['repeats'].values())
    assert (tmp_path / 'results.md').read_text().strip() == out.strip()
    tool.main(['--depth-sweep', '2', '--sizes', '16', '--cases',
               '--channels', '4', '--repeat', '1', '--runs', '1',
               '--out-dir', str(tmp_path)])
    out = capsys.readouterr().out
    assert '| split1 vs split0 | split2 vs split0 |' in out
    with pytest.raises(SystemExit):
        tool.parse_args(['--sizes', '12y4'])
