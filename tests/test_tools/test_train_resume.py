"""tools/train.py on a tiny generated dataset: a save/resume round trip on the
installed torch (>= 2.6 refuses mmengine checkpoints without our fix)."""
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmvheat.utils import ToolError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CONFIG = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmvheat.models'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(num_classes=2, mean=[127.5] * 3, std=[64.] * 3),
    backbone=dict(type='mmvheat.VHeat', arch=dict(depths=[1, 1, 1, 1],
                  dims=8), img_size=32, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
train_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root={data_root!r},
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(by_epoch=True, max_epochs=1)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1),
                     logger=dict(type='LoggerHook', interval=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
"""


@pytest.fixture(scope='module')
def train_config(tmp_path_factory):
    import cv2
    tmp = tmp_path_factory.mktemp('resume')
    rng = np.random.default_rng(0)
    for cls in ('a', 'b'):
        os.makedirs(tmp / 'data' / cls)
        for i in range(2):
            img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp / 'data' / cls / f'{i}.png'), img)
    cfg = tmp / 'cfg.py'
    cfg.write_text(CONFIG.format(data_root=str(tmp / 'data')))
    return tmp, cfg


def run_train(*args):
    proc = subprocess.run([sys.executable, 'tools/train.py', *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_train_save_and_resume(train_config):
    tmp, cfg = train_config
    work = tmp / 'work'
    run_train(cfg, '--work-dir', work)
    first = work / 'epoch_1.pth'
    assert first.is_file()
    # Without the fix the installed torch refuses mmengine's own checkpoint.
    if torch.__version__ >= '2.6':
        with pytest.raises(pickle.UnpicklingError):
            torch.load(first, weights_only=True)
    log = run_train(cfg, '--work-dir', work, '--resume', '--cfg-options',
                    'train_cfg.max_epochs=2')
    assert 'resumed epoch: 1' in log, log[-3000:]
    # resume from an explicit path, too
    log = run_train(cfg, '--work-dir', tmp / 'work2', '--resume', first,
                    '--cfg-options', 'train_cfg.max_epochs=2')
    assert 'resumed epoch: 1' in log, log[-3000:]

    from mmengine.runner import load_checkpoint

    import mmvheat.engine  # noqa: F401  (installs the fix)
    ckpt = load_checkpoint(torch.nn.Module(), str(work / 'epoch_2.pth'),
                           strict=False)
    assert ckpt['meta']['epoch'] == 2
    assert ckpt['meta']['iter'] == 4
    assert 'backbone.freq_embed.0' in ckpt['state_dict']
    hub = ckpt['message_hub']['log_scalars']
    assert 'train/loss' in hub


def test_refuses_unknown_objects_clearly(tmp_path):
    import datetime

    from mmvheat.checkpoint import safe_torch_load
    path = tmp_path / 'evil.pth'
    # (timm's argparse.Namespace is allowlisted; a date is not)
    torch.save({'state_dict': {}, 'obj': datetime.date(2026, 1, 1)}, path)
    with pytest.raises(RuntimeError, match='MMVHEAT_UNSAFE_LOAD=1'):
        safe_torch_load(str(path))


def test_train_flags_applied(monkeypatch):
    import importlib.util

    import mmengine.device
    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(ROOT, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from mmvheat.utils import load_config
    path = osp.join(ROOT, 'configs/classification/vheat-tiny_16xb128_in1k.py')
    args = tool.parse_args([path, '--amp', '--auto-scale-lr', '--resume',
                            'x.pth', '--cfg-options',
                            'train_dataloader.batch_size=8'])
    if mmengine.device.get_device() == 'cpu':
        # mmengine's AmpOptimWrapper needs an accelerator: one clear line
        with pytest.raises(ToolError, match='--amp uses mmengine.s '
                           'AmpOptimWrapper, which needs a GPU'):
            tool.apply_args(load_config(path, args.cfg_options), args)
        monkeypatch.setattr(mmengine.device, 'get_device', lambda: 'cuda')
    cfg = tool.apply_args(load_config(path, args.cfg_options), args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.auto_scale_lr == dict(base_batch_size=2048, enable=True)
    assert cfg.resume and cfg.load_from == 'x.pth'
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.work_dir.endswith('vheat-tiny_16xb128_in1k')
    args = tool.parse_args([path, '--resume'])
    cfg = tool.apply_args(load_config(path), args)
    assert cfg.resume and cfg.load_from is None


def test_compile_flag_and_config_key():
    """``--compile`` and a config's ``compile=True`` both reach mmengine as
    torch.compile arguments with the inductor options for changing input
    sizes; a config's own options win; other backends are left alone."""
    import importlib.util

    from mmvheat.utils import compile_settings, load_config
    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(ROOT, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    path = osp.join(ROOT, 'configs/demo/vheat-demo_4xb16_shapes-cls.py')
    wanted = dict(options=dict(strict_output_strides=True))
    args = tool.parse_args([path, '--compile'])
    cfg = tool.apply_args(load_config(path), args)
    assert cfg.compile == wanted
    cfg = load_config(path, dict(compile=True))
    assert cfg.compile == wanted
    assert load_config(path, dict(compile=False)).compile is None
    assert 'compile' not in load_config(path)
    assert compile_settings(dict(dynamic=True, options=dict(
        strict_output_strides=False))) == dict(
            dynamic=True, options=dict(strict_output_strides=False))
    assert compile_settings(dict(backend='eager')) == dict(backend='eager')
    with pytest.raises(ToolError, match='compile must be True, False or'):
        compile_settings('yes')
