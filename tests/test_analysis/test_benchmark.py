"""The benchmark script, end to end on one tiny configuration."""
import csv
import json
import subprocess
import sys

import pytest

from mmvheat.benchmark import parse_spec, run_config


def test_cli_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, 'tools/analysis_tools/benchmark.py', '--models',
         'vheat-t:reference', 'vheat-t:matmul', 'swin-t', '--modes',
         'infer', 'train', '--resolutions', '64', '--batch-sizes', '1',
         '--warmup', '0', '--runs', '2', '--threads', '1', '--out-dir',
         str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / 'results.json').read_text())
    assert len(results) == 6
    for r in results:
        assert 'error' not in r, r
        assert r['img_per_s'] > 0 and len(r['times']) == 2
        assert r['peak_mem_mb'] > r['step_mem_mb'] >= 0
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
        [sys.executable, 'tools/analysis_tools/benchmark.py', '--models',
         'vheat-x'], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown model 'vheat-x'" in out.stderr
    with pytest.raises(ValueError, match='only vheat models take an :IMPL'):
        parse_spec('swin-t:fft')
    with pytest.raises(ValueError, match='IMPL must be one of'):
        parse_spec('vheat-s:conv')


def test_run_config_rejects_bad_mode():
    with pytest.raises(ValueError, match="mode must be 'infer' or 'train'"):
        run_config('vheat-t', 'eval', 'fp32', 64, 1)


def test_repeats_take_the_median_sweep():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'bench_tool', 'tools/analysis_tools/benchmark.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    runs = [dict(img_per_s=v, tag=v) for v in (3.0, 1.0, 2.0)]
    merged = tool.merge_repeats(runs)
    assert merged['tag'] == 2.0
    assert merged['sweep_img_per_s'] == [1.0, 2.0, 3.0]
    assert tool.merge_repeats([dict(error='x')]) == dict(error='x')
