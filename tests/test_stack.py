"""The installed stack: compiled mmcv ops, and mmvheat's core importing
with torch and mmengine alone."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from helpers.paths import REPO_ROOT


def test_mmcv_compiled_ops_run_on_cpu():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                          [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert dets.shape == (2, 5)
    from torchvision.ops import roi_align
    feat = torch.arange(2 * 36.).view(1, 2, 6, 6)
    rois = torch.tensor([[0., 0.5, 1., 4., 5.5], [0., 2., 2., 3., 3.]])
    out = RoIAlign((2, 3), spatial_scale=1.0, sampling_ratio=2,
                   aligned=True)(feat, rois)
    assert out.shape == (2, 2, 2, 3)
    expected = roi_align(feat, rois, (2, 3), 1.0, 2, aligned=True)
    torch.testing.assert_close(out, expected)


BLOCKER = """
import sys
BLOCKED = ('mmdet', 'mmseg', 'mmpretrain', 'mmcv')
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{name} is blocked for this test')
sys.meta_path.insert(0, Blocker())
import importlib.util
importlib.util.find_spec = (lambda f: lambda name, *a: None
    if name.split('.')[0] in BLOCKED else f(name, *a))(
        importlib.util.find_spec)
import torch, mmvheat, mmvheat.models
from mmvheat.models import VHeat
m = VHeat(dict(depths=[1, 1, 1, 1], dims=8), out_indices=(0, 3))
outs = m(torch.randn(1, 3, 35, 29))
print([tuple(o.shape) for o in outs])
assert not any(k.split('.')[0] in BLOCKED for k in sys.modules), \\
    [k for k in sys.modules if k.split('.')[0] in BLOCKED]
"""


def test_core_imports_without_task_libraries():
    proc = subprocess.run([sys.executable, '-c', BLOCKER],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '[(1, 8, 9, 8), (1, 64, 2, 1)]' in proc.stdout


@pytest.mark.slow
def test_install_script_repairs_a_downgraded_setuptools(tmp_path):
    """`pip install openmim` downgrades setuptools to 60.2 (openxlab's pin);
    a re-run of tools/install.sh puts a version in [77, 81) back and finds
    the rest of the stack already in place."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages',
                    '--without-pip', str(venv)], check=True, timeout=120)
    py = str(venv / 'bin' / 'python')
    # the system pip, run by the venv's interpreter, installs into the venv
    subprocess.run([py, '-m', 'pip', 'install', '-q', 'setuptools==60.2.0'],
                   check=True, timeout=300, capture_output=True)
    version = [py, '-c', 'import setuptools; print(setuptools.__version__)']
    assert subprocess.run(version, capture_output=True, text=True,
                          cwd='/').stdout.strip() == '60.2.0'
    proc = subprocess.run(['bash', osp.join(REPO_ROOT, 'tools', 'install.sh')],
                          env=dict(os.environ, PYTHON=py), capture_output=True,
                          text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'found setuptools 60.2.0; need >=77,<81' in out
    repaired = subprocess.run(version, capture_output=True, text=True,
                              cwd='/').stdout.strip()
    major = int(repaired.split('.')[0])
    assert 77 <= major < 81, repaired
    assert f'installed setuptools {repaired}' in out
    # nothing else was reinstalled: every later step found its libraries
    assert out.count('already') >= 5, out[-3000:]
