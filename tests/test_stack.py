"""The installed stack: compiled mmcv ops, and mmvheat's core importing
with torch and mmengine alone."""
import subprocess
import sys

import torch


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
    if name.split('.')[0] in BLOCKED else f(name, *a))(importlib.util.find_spec)
import torch, mmvheat, mmvheat.models
from mmvheat.models import VHeat, register_in_libraries
m = VHeat(dict(depths=[1, 1, 1, 1], dims=8), out_indices=(0, 3))
outs = m(torch.randn(1, 3, 35, 29))
print([tuple(o.shape) for o in outs])
print(register_in_libraries())
assert not any(k.split('.')[0] in BLOCKED for k in sys.modules), \\
    [k for k in sys.modules if k.split('.')[0] in BLOCKED]
"""


def test_core_imports_without_task_libraries():
    proc = subprocess.run([sys.executable, '-c', BLOCKER],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '[(1, 8, 9, 8), (1, 64, 2, 1)]' in proc.stdout
    assert "'mmdet': 'not installed'" in proc.stdout
