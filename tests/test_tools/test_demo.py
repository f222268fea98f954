"""The main job: demo data, tools/demo.py on tiny data, kill-and-resume with
the RNG-state hook, and clear errors for missing data."""
import hashlib
import importlib.util
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mmvheat.analysis.demo_data import make_ade20k, make_coco, make_imagenet

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CFG = 'configs/demo/vheat-demo_4xb16_shapes-cls.py'


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree_digest(root):
    digest = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            digest.update(name.encode())
            with open(osp.join(dirpath, name), 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


def test_demo_data_deterministic_and_valid(tmp_path):
    for seed_dir in ('a', 'b'):
        make_coco(str(tmp_path / seed_dir / 'coco'), 6, 3, seed=3)
        make_ade20k(str(tmp_path / seed_dir / 'ade'), 6, 3, seed=3)
        make_imagenet(str(tmp_path / seed_dir / 'in'), 8, 4, seed=3)
    assert tree_digest(tmp_path / 'a') == tree_digest(tmp_path / 'b')
    make_coco(str(tmp_path / 'c'), 6, 3, seed=4)
    assert tree_digest(tmp_path / 'c') != tree_digest(tmp_path / 'a' / 'coco')

    from pycocotools.coco import COCO
    coco = COCO(str(tmp_path / 'a/coco/annotations/instances_train2017.json'))
    assert len(coco.getImgIds()) == 6 and len(coco.getCatIds()) == 4
    for ann in coco.loadAnns(coco.getAnnIds()):
        x, y, w, h = ann['bbox']
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128
        assert ann['iscrowd'] == 0 and ann['area'] > 0
        mask = coco.annToMask(ann)
        # the polygon covers the visible shape: its area matches
        assert abs(int(mask.sum()) - ann['area']) <= 0.25 * ann['area']
    import cv2
    labels = set()
    for f in os.listdir(tmp_path / 'a/ade/annotations/training'):
        seg = cv2.imread(str(tmp_path / 'a/ade/annotations/training' / f),
                         cv2.IMREAD_UNCHANGED)
        labels |= set(np.unique(seg).tolist())
    assert 0 in labels and labels <= {0, 1, 2, 3, 4} and len(labels) > 2
    assert sorted(os.listdir(tmp_path / 'a/in/train')) == [
        'circle', 'diamond', 'square', 'triangle'
    ]


@pytest.fixture(scope='module')
def tiny_demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo_data')
    make_coco(str(root / 'shapes_coco'), 4, 2, size=(128, 128))
    make_ade20k(str(root / 'shapes_ade'), 4, 2, size=(128, 128))
    make_imagenet(str(root / 'shapes_cls'), 8, 4, size=(64, 64))
    return root


@pytest.mark.slow
@pytest.mark.parametrize('task,opts', [
    ('det', ['train_cfg.max_epochs=1']),
    ('seg', ['train_cfg.max_iters=2', 'train_cfg.val_interval=2']),
    ('cls', ['train_cfg.max_epochs=1']),
])
def test_demo_runs_each_task(tiny_demo_root, tmp_path, task, opts):
    demo = load_tool('demo')
    results = demo.main(['--tasks', task, '--data-root', str(tiny_demo_root),
                         '--work-dir', str(tmp_path), '--cfg-options',
                         *opts])
    metrics, seconds = results[task]
    keys, _, _, scale = demo.METRICS[task]
    for key in keys:
        assert 0 <= metrics[key] <= scale, (key, metrics)
    assert osp.isfile(tmp_path / 'demo_predictions.png')
    assert osp.isfile(demo.latest_checkpoint(str(tmp_path / task)))
    if task != 'det':  # panels drawn at the figure's height, not upscaled
        import cv2
        panels = sorted(os.listdir(tmp_path / task / 'predictions'))
        assert panels == [f'{task}_{i:02d}.png'
                          for i in range({'seg': 2, 'cls': 4}[task])]
        first = cv2.imread(str(tmp_path / task / 'predictions' / panels[0]))
        expected = {'seg': (256, 520, 3), 'cls': (256, 260, 3)}[task]
        assert first.shape == expected


def final_weights(path):
    from mmvheat.checkpoint import safe_torch_load
    return safe_torch_load(str(path))['state_dict']


RESUME_CASES = {
    # epoch-based: checkpoint every epoch, 4 epochs, kill after the 2nd
    'cls': (CLS_CFG, make_imagenet, dict(num_train=160, num_val=8,
                                         size=(64, 64)),
            ['train_cfg.max_epochs=4'], 'epoch_2', 'epoch_4.pth'),
    # iteration-based: mmengine replays the seen batches on resume
    'seg': ('configs/demo/vheat-demo_upernet_4xb8-1k_shapes-128x128.py',
            make_ade20k, dict(num_train=24, num_val=4),
            ['train_cfg.max_iters=12', 'train_cfg.val_interval=4',
             'default_hooks.checkpoint.interval=4',
             'default_hooks.checkpoint.max_keep_ckpts=5'], 'iter_4',
            'iter_12.pth'),
}


@pytest.mark.slow
@pytest.mark.parametrize('case', list(RESUME_CASES))
def test_kill_and_resume_matches_uninterrupted(tmp_path, case):
    """SIGKILL a demo run after a mid-way checkpoint, resume: the final
    weights equal those of an uninterrupted run (RNGStateHook)."""
    cfg, make, sizes, extra, kill_at, final = RESUME_CASES[case]
    data = tmp_path / 'data'
    make(str(data), **sizes)
    opts = ['--cfg-options'] + [
        f'{loader}.dataset.data_root={data}'
        for loader in ('train_dataloader', 'val_dataloader')
    ] + extra + ['randomness.deterministic=True',
                 'model.backbone.drop_path_rate=0.2']
    cmd = [sys.executable, 'tools/train.py', cfg]
    subprocess.run(cmd + ['--work-dir', str(tmp_path / 'full')] + opts,
                   cwd=ROOT, check=True, capture_output=True, timeout=600)

    killed = tmp_path / 'killed'
    proc = subprocess.Popen(cmd + ['--work-dir', str(killed)] + opts,
                            cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = killed / 'last_checkpoint'
    deadline = time.time() + 300
    while time.time() < deadline and not (last.exists()
                                          and kill_at in last.read_text()):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert kill_at in last.read_text()
    assert not (killed / final).exists(), 'killed too late'
    out = subprocess.run(cmd + ['--work-dir', str(killed), '--resume'] +
                         opts, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'resumed epoch: ' in out.stdout + out.stderr

    full = final_weights(tmp_path / 'full' / final)
    resumed = final_weights(killed / final)
    assert full.keys() == resumed.keys()
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=0,
                                   atol=1e-6, msg=key)
    from mmvheat.checkpoint import safe_torch_load  # RNG states load safely
    ckpt = safe_torch_load(str(killed / final))
    assert len(ckpt['rng_state']) == 1 and 'numpy' in ckpt['rng_state'][0]


def test_missing_data_gives_clear_errors(tmp_path):
    cmd = [sys.executable, 'tools/train.py',
           'configs/demo/mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py']
    missing = tmp_path / 'nowhere'
    out = subprocess.run(
        cmd + ['--cfg-options',
               f'train_dataloader.dataset.data_root={missing}'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert f"data_root '{missing}' does not exist" in out.stderr
    make_coco(str(tmp_path / 'coco'), 2, 1)
    os.remove(tmp_path / 'coco/annotations/instances_train2017.json')
    out = subprocess.run(
        cmd + ['--cfg-options',
               f'train_dataloader.dataset.data_root={tmp_path / "coco"}'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert 'annotation file' in out.stderr
    assert 'instances_train2017.json' in out.stderr


def test_rng_state_round_trip():
    import random

    from mmvheat.engine.rng_state_hook import (
        capture_rng_state,
        restore_rng_state,
    )
    state = capture_rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[2] == b[2]
