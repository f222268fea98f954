"""The FLOPs tool reproduces the paper's figures."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch

from helpers.paths import REPO_ROOT
from mmvheat.analysis.flops import (
    backbone_flops,
    flop_analyzer,
    task_model_flops,
)
from mmvheat.ops import dct_matrix
from mmvheat.ops.split_dct import axis_plan, split_depth

GET_FLOPS = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'get_flops.py')
DEMO_SEG = osp.join(REPO_ROOT, 'configs', 'demo',
                    'vheat-demo_upernet_4xb8-1k_shapes-128x128.py')
DEMO_CLS = osp.join(REPO_ROOT, 'configs', 'demo',
                    'vheat-demo_4xb16_shapes-cls.py')

# (deploy, train) GFLOPs at 224: the paper's and mmengine's count of the
# authors' training-form model.
PUBLISHED = {'tiny': (4.6, 4.94), 'small': (8.5, 9.17), 'base': (14.9, 16.16)}


@pytest.mark.slow
@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_backbone_flops_within_2_percent(arch):
    deploy = backbone_flops(arch, 224, 'deploy')['flops'] / 1e9
    train = backbone_flops(arch, 224, 'train')['flops'] / 1e9
    paper_deploy, paper_train = PUBLISHED[arch]
    assert abs(deploy - paper_deploy) / paper_deploy < 0.02, deploy
    assert abs(train - paper_train) / paper_train < 0.02, train


def test_every_impl_counts_the_same_dense_products():
    """Without a split (maps below 128) every implementation counts the
    dense DCT products."""
    arch = dict(depths=[1, 1, 1, 1], dims=16)
    counts = {
        impl: backbone_flops(arch, 96, 'deploy', impl)['flops']
        for impl in ('matmul', 'split', 'fft')
    }
    assert counts['fft'] == counts['matmul'] == counts['split']


def _split_saving(h: int, w: int, channels: int) -> int:
    """Dense minus split multiply-adds of one heat filter (forward and
    inverse) on an (h, w, channels) map, from the split's own matrices."""
    def plan_macs(n):
        plan = axis_plan(dct_matrix(n), split_depth(n))
        return sum(m.numel() for m in plan.forward + plan.inverse)
    split = channels * (h * plan_macs(w) + w * plan_macs(h))
    return 2 * channels * h * w * (h + w) - split


def test_split_counts_the_products_it_does(split_everywhere):
    """With the split (here from length 4) the count drops by exactly the
    multiply-adds the split's smaller matrices save, block by block."""
    arch = dict(depths=[1, 2, 1, 1], dims=16)
    dense = backbone_flops(arch, 96, 'deploy', 'matmul')['flops']
    split = backbone_flops(arch, 96, 'deploy', 'split')['flops']
    # stage maps 24, 12, 6, 3 with 16, 32, 64, 128 channels
    saving = sum(depth * _split_saving(side, side, 16 * 2**i)
                 for i, (side, depth) in enumerate(zip((24, 12, 6, 3),
                                                       (1, 2, 1, 1))))
    dense_dct = sum(depth * 2 * 16 * 2**i * side**2 * (2 * side)
                    for i, (side, depth) in enumerate(zip((24, 12, 6, 3),
                                                          (1, 2, 1, 1))))
    assert saving > 0.4 * dense_dct
    assert dense - split == saving


class _Matmul(torch.nn.Module):

    def forward(self, a, b):
        return torch.matmul(a, b)


@pytest.mark.parametrize('a,b,expect', [((5, 3), (7, 3, 4), 7 * 5 * 3 * 4),
                                        ((2, 1, 5, 3), (6, 3, 4),
                                         2 * 6 * 5 * 3 * 4),
                                        ((5, 3), (3, 4), 5 * 3 * 4)])
def test_broadcast_matmul_handle(a, b, expect):
    analyzer = flop_analyzer(_Matmul(), (torch.zeros(a), torch.zeros(b)))
    assert analyzer.total() == expect


def _table_rows(out: str) -> list:
    """The cells of the markdown table's body rows."""
    return [[c.strip() for c in line.strip().strip('|').split('|')]
            for line in out.splitlines()
            if line.startswith('|') and not line.startswith(('| model',
                                                             '|---'))]


def _get_flops(*args) -> str:
    proc = subprocess.run(
        [sys.executable, GET_FLOPS, *args], capture_output=True, text=True,
        cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # mmengine's pkg_resources deprecation warnings are filtered, and only
    # they: nothing else was silenced to get here
    assert 'pkg_resources' not in proc.stderr
    return proc.stdout


def test_cli_prints_table_with_the_papers_figures():
    """The paper column holds the paper's 29M / 4.6G for both forms (not
    the count of the authors' code)."""
    out = _get_flops('--models', 'tiny', '--forms', 'deploy', 'train')
    rows = [line for line in out.splitlines() if 'vHeat-T' in line]
    assert len(rows) == 2
    for row, form in zip(rows, ('deploy', 'train')):
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert cells[:3] == ['vHeat-T (ImageNet)', '224x224', form]
        assert cells[3] == '30.85' and cells[5] == '29' and cells[7] == '4.6'
        assert cells[9] == 'hco_impl split'  # the model's default
    assert 'split: the DCT as the even/odd split does it' in out
    assert "The paper's dense DCT count: --hco-impl matmul." in out


def test_cli_counts_other_model_specs():
    """--models takes the benchmark's specs: a vHeat spec's :IMPL picks
    the implementation (the paper's dense count), and Swin-T is counted
    once (it has no deployed form)."""
    out = _get_flops('--models', 'vheat-t:matmul', 'swin-t', '--sizes',
                     '64', '--forms', 'deploy', 'train')
    rows = _table_rows(out)
    assert [r[:3] for r in rows] == [
        ['vHeat-T (ImageNet)', '64x64', 'deploy'],
        ['vHeat-T (ImageNet)', '64x64', 'train'],
        ['Swin-T (ImageNet)', '64x64', '-']]
    assert rows[0][9] == 'hco_impl matmul' and rows[2][9] == ''
    assert float(rows[2][3]) > 25  # Swin-T's 28M parameters
    assert 'matmul: the DCT as dense products (the paper convention)' in out


def test_cli_counts_only_the_config_it_is_given():
    """A positional CONFIG with --shape counts that model alone (here the
    demo UperNet, from mmseg:: bases): no ImageNet rows unless --models
    asks for them."""
    out = _get_flops(DEMO_SEG, '--shape', '64', '48', '--forms', 'deploy')
    rows = _table_rows(out)
    assert [r[:3] for r in rows] == [[osp.basename(DEMO_SEG), '48x64',
                                      'deploy']]
    assert float(rows[0][3]) > 0 and float(rows[0][4]) > 0
    assert 'ImageNet' not in out


def test_classification_config_counts_like_the_classifier():
    """An mmpretrain config (no ``_forward``) is counted through the
    tensor mode the three libraries share: the demo classifier's backbone
    and head, as the ImageNet classifier of the same arch counts them."""
    arch = dict(depths=[1, 1, 2, 1], dims=16)
    task = task_model_flops(DEMO_CLS, 64, 64, 'deploy')
    ours = backbone_flops(arch, 64, 'deploy', num_classes=4)
    assert task['params'] == ours['params']
    assert task['flops'] == pytest.approx(ours['flops'], rel=1e-3)


def _tool():
    spec = importlib.util.spec_from_file_location('get_flops', GET_FLOPS)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_cli_arguments_and_their_old_spellings():
    tool = _tool()
    args = tool.parse_args([])
    assert args.config is None
    assert args.models == ['vheat-t', 'vheat-s', 'vheat-b']
    assert args.sizes == [224] and args.hco_impl is None
    args = tool.parse_args(['cfg.py'])
    assert args.config == 'cfg.py' and args.models is None
    args = tool.parse_args(['cfg.py', '--models', 'vheat-s'])
    assert args.config == 'cfg.py' and args.models == ['vheat-s']
    new = tool.parse_args(['--models', 'vheat-t', 'vheat-b', '--sizes',
                           '224', '512'])
    old = tool.parse_args(['--archs', 'tiny', 'base', '--resolutions', '224',
                           '512'])
    assert vars(new) == vars(old)
    assert new.models == ['vheat-t', 'vheat-b'] and new.sizes == [224, 512]
    assert tool.parse_args(['--models', 'small']).models == ['vheat-s']
    assert vars(tool.parse_args(['--config', 'cfg.py'])) == vars(
        tool.parse_args(['cfg.py']))
    with pytest.raises(SystemExit):
        tool.parse_args(['a.py', '--config', 'b.py'])


def test_cli_help_hides_the_old_spellings():
    out = subprocess.run([sys.executable, GET_FLOPS, '--help'],
                         capture_output=True, text=True, check=True,
                         cwd=REPO_ROOT).stdout
    for flag in ('--models', '--sizes', '--shape', '--forms', '--hco-impl',
                 '--tasks'):
        assert flag in out
    for old in ('--archs', '--resolutions', '--config'):
        assert old not in out
