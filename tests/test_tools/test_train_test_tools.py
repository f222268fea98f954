"""tools/train.py, tools/test.py, dist_train.sh and the libraries'
inferencers on the real configs, shrunk by child configs written here (tiny
backbone, tiny images, a generated dataset, one short epoch)."""
import os
import os.path as osp
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmvheat.analysis.demo_data import (
    SHAPES,
    make_ade20k,
    make_coco,
    make_imagenet,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = tuple(SHAPES)
TINY = "dict(_delete_=True, depths=[1, 1, 1, 1], dims=8)"

DET = """
_base_ = [{base!r}]
data_root = {data!r}
metainfo = dict(classes={classes!r})
model = dict(
    backbone=dict(arch={tiny}, img_size=64,
                  init_cfg=dict(checkpoint=None)),
    neck=dict(in_channels=[8, 16, 32, 64]),
    roi_head=dict(bbox_head=dict(num_classes=4),
                  mask_head=dict(num_classes=4)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
         'img_shape', 'scale_factor'))]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
"""

SEG = """
_base_ = [{base!r}]
data_root = {data!r}
metainfo = dict(classes={classes!r}, palette=[[255, 0, 0], [0, 255, 0],
                                             [0, 0, 255], [255, 255, 0]])
model = dict(
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(arch={tiny}, img_size=64,
                  init_cfg=dict(checkpoint=None)),
    decode_head=dict(in_channels=[8, 16, 32, 64], channels=16, num_classes=4),
    auxiliary_head=dict(in_channels=32, channels=8, num_classes=4),
    test_cfg=dict(mode='slide', crop_size=(64, 64), stride=(43, 43)))
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.jpg', seg_map_suffix='.png',
               reduce_zero_label=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True)
         for r in (0.75, 1.0)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, pipeline=train_pipeline,
        data_prefix=dict(img_path='images/training',
                         seg_map_path='annotations/training')))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, pipeline=test_pipeline,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation')))
test_dataloader = val_dataloader
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2))
"""

CLS = """
_base_ = [{base!r}]
data_root = {data!r}
model = dict(backbone=dict(arch={tiny}, img_size=64),
             head=dict(num_classes=4, in_channels=64))
data_preprocessor = dict(num_classes=4)
dataset = dict(type='CustomDataset', data_root=data_root)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, data_prefix='train',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='RandomResizedCrop', scale=64),
                           dict(type='PackInputs')]))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, data_prefix='val',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=True,
                        end=1, convert_to_iter_based=True)]
"""

TASKS = {
    'det': (DET, 'configs/detection/mask-rcnn_vheat-t_fpn_1x_coco.py',
            'coco/', 'epoch_1.pth', 'coco/bbox_mAP'),
    'seg': (SEG, 'configs/segmentation/'
            'vheat-tiny_upernet_8xb2-160k_ade20k-512x512.py', 'ade',
            'iter_2.pth', 'mIoU'),
    'cls': (CLS, 'configs/classification/vheat-tiny_16xb128_in1k.py',
            'imagenet', 'epoch_1.pth', 'accuracy/top1'),
}


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tools')
    make_coco(str(tmp / 'coco'), 4, 2, size=(64, 64))
    make_ade20k(str(tmp / 'ade'), 4, 2, size=(64, 64))
    make_imagenet(str(tmp / 'imagenet'), 8, 4, size=(64, 64))
    configs = {}
    for task, (text, base, data, _, _) in TASKS.items():
        path = tmp / f'{task}_cfg.py'
        path.write_text(text.format(base=osp.join(ROOT, base),
                                    data=str(tmp / data) + (
                                        '/' if data.endswith('/') else ''),
                                    classes=CLASSES, tiny=TINY))
        configs[task] = str(path)
    return tmp, configs


def run(*args, env=None):
    proc = subprocess.run([*map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600,
                          env=dict(os.environ, **(env or {})))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope='module')
def trained(workspace):
    tmp, configs = workspace
    ckpts = {}
    for task, (_, _, _, ckpt, metric) in TASKS.items():
        work = tmp / f'work_{task}'
        log = run(sys.executable, 'tools/train.py', configs[task],
                  '--work-dir', work)
        assert metric in log, log[-3000:]
        assert (work / ckpt).is_file()
        ckpts[task] = str(work / ckpt)
    return ckpts


@pytest.mark.slow
@pytest.mark.parametrize('task', list(TASKS))
def test_train_then_test(workspace, trained, task):
    """--out is one .pkl file in every library; --out-dir writes a
    segmentor's masks as PNG files."""
    tmp, configs = workspace
    metric = TASKS[task][4]
    out = tmp / f'{task}.pkl'
    masks = ['--out-dir', tmp / 'seg_masks'] if task == 'seg' else []
    log = run(sys.executable, 'tools/test.py', configs[task], trained[task],
              '--work-dir', tmp / f'test_{task}', '--out', out, *masks)
    assert re.search(re.escape(metric) + r':\s*[-\d.]+', log), log[-3000:]
    assert osp.isfile(out)
    if masks:
        assert any(f.endswith('.png') for f in os.listdir(masks[1]))


def test_test_out_is_one_file_and_out_dir_seg_masks():
    """tools/test.py's --out takes a .pkl file whatever the library (a
    folder is --out-dir, for a segmentor's masks)."""
    import importlib.util

    from mmengine.config import Config

    from mmvheat.utils import ToolError
    spec = importlib.util.spec_from_file_location(
        'test_tool', osp.join(ROOT, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    def cfg(scope, metric):
        return Config(dict(default_scope=scope,
                           test_evaluator=dict(type=metric)))

    seg = cfg('mmseg', 'IoUMetric')
    with pytest.raises(ToolError, match='use --out-dir DIR'):
        tool.add_result_dump(seg, 'preds')
    tool.add_mask_output(seg, 'masks')
    assert seg.test_evaluator.output_dir == 'masks'
    tool.add_result_dump(seg, 'preds.pkl')
    assert [e['type'] for e in seg.test_evaluator] == ['IoUMetric',
                                                      'DumpResults']
    det = cfg('mmdet', 'CocoMetric')
    tool.add_result_dump(det, 'preds.pkl')
    assert det.test_evaluator[1]['type'] == 'DumpDetResults'
    with pytest.raises(ToolError, match='--out-dir writes the predicted '
                       'masks of a segmentation'):
        tool.add_mask_output(cfg('mmpretrain', 'Accuracy'), 'masks')


@pytest.mark.slow
def test_seg_tta_and_show_dir(workspace, trained):
    tmp, configs = workspace
    show = tmp / 'show'
    log = run(sys.executable, 'tools/test.py', configs['seg'], trained['seg'],
              '--work-dir', tmp / 'tta', '--tta', '--show-dir', show)
    assert 'mIoU' in log
    pngs = [f for _, _, fs in os.walk(show) for f in fs if f.endswith('.png')]
    assert len(pngs) == 2


def test_test_missing_checkpoint(workspace):
    tmp, configs = workspace
    proc = subprocess.run([sys.executable, 'tools/test.py', configs['cls'],
                           str(tmp / 'missing.pth')], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'checkpoint not found' in proc.stderr


@pytest.mark.slow
def test_dist_train_two_cpu_processes(workspace):
    """The demo classifier config on 2 CPU processes (gloo), then
    dist_test.sh; both gather their evaluation across ranks."""
    tmp, _ = workspace
    work = tmp / 'dist'
    data = tmp / 'imagenet'
    cfg = 'configs/demo/vheat-demo_4xb16_shapes-cls.py'
    opts = ['--cfg-options'] + [
        f'{loader}.dataset.data_root={data}'
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader')
    ]
    log = run('bash', 'tools/dist_train.sh', cfg, 2, '--work-dir', work,
              *opts, 'train_cfg.max_epochs=1', 'train_dataloader.batch_size=4',
              env=dict(PORT=str(random.randint(20000, 40000)),
                       PYTHON=sys.executable))
    assert 'accuracy/top1' in log
    assert (work / 'epoch_1.pth').is_file()
    # RNGStateHook gathered both processes' RNG states into the checkpoint
    # (rank 0 writes it; a gather on rank 0 alone would hang the run)
    states = torch.load(work / 'epoch_1.pth', weights_only=False)['rng_state']
    assert len(states) == 2
    assert all({'torch', 'numpy', 'python'} <= set(s) for s in states)
    text = ''.join(
        open(osp.join(dp, f)).read() for dp, _, fs in os.walk(work)
        for f in fs if f.endswith('.log'))
    assert 'Distributed training: True' in text
    assert "'backend': 'gloo'" in text
    # 8 images, batch 4 per process, 2 processes: one iteration per epoch
    assert 'Epoch(train) [1][1/1]' in text
    log = run('bash', 'tools/dist_test.sh', cfg, work / 'epoch_1.pth', 2,
              '--work-dir', tmp / 'dist_test', *opts,
              env=dict(PORT=str(random.randint(20000, 40000)),
                       PYTHON=sys.executable))
    assert re.search(r'accuracy/top1:\s*[\d.]+', log)


@pytest.mark.slow
def test_inferencers(workspace, trained):
    tmp, configs = workspace
    import cv2
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3),
                                            dtype=np.uint8)
    path = str(tmp / 'infer.jpg')
    cv2.imwrite(path, img)

    # Each library's inferencer in its own default scope (mixing three
    # libraries in one process otherwise leaks the last scope between them).
    from mmdet.apis import DetInferencer
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        det = DetInferencer(model=configs['det'], weights=trained['det'],
                            device='cpu')
        res = det(path, no_save_vis=True)
    assert 'bboxes' in res['predictions'][0]

    from mmseg.apis import MMSegInferencer
    with DefaultScope.overwrite_default_scope('mmseg'):
        seg = MMSegInferencer(model=configs['seg'], weights=trained['seg'],
                              device='cpu')
        res = seg(path)
    assert res['predictions'].shape == (64, 64)

    from mmpretrain import ImageClassificationInferencer
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        cls = ImageClassificationInferencer(model=configs['cls'],
                                            pretrained=trained['cls'],
                                            device='cpu')
        res = cls(path)[0]
    assert len(res['pred_scores']) == 4


@pytest.mark.slow
def test_test_tool_accepts_released_segmentation_checkpoint(
        workspace, released_checkpoint):
    """tools/test.py with the real (unshrunk) UperNet vHeat-T config and a
    checkpoint in the released format, on the generated ADE20K layout."""
    tmp, _ = workspace
    base = tmp / 'mmseg_swin.py'
    base.write_text("_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-"
                    "pre_upernet_8xb2-160k_ade20k-512x512.py']\n")
    ckpt = released_checkpoint(str(base), 512, tmp / 'upernet_release.pth')
    cfg = tmp / 'seg_full.py'
    cfg.write_text(
        f"_base_ = [{osp.join(ROOT, TASKS['seg'][1])!r}]\n"
        f"data_root = {str(tmp / 'ade')!r}\n"
        "test_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        "                       dataset=dict(data_root=data_root))\n")
    log = run(sys.executable, 'tools/test.py', cfg, ckpt, '--work-dir',
              tmp / 'seg_full_work')
    assert re.search(r'mIoU:\s*[\d.]+', log), log[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize('task,lib', [('det', 'mmdet'), ('seg', 'mmseg'),
                                      ('cls', 'mmpretrain')])
def test_libraries_own_test_tools(workspace, trained, task, lib):
    """The configs work unchanged with the libraries' own tools/test.py
    (their wheels ship them under .mim/tools); the checkpoint written by a
    torch>=2.6 run loads there too, through custom_imports."""
    import importlib
    tmp, configs = workspace
    tool = osp.join(osp.dirname(importlib.import_module(lib).__file__),
                    '.mim', 'tools', 'test.py')
    log = run(sys.executable, tool, configs[task], trained[task],
              '--work-dir', tmp / f'own_{task}')
    assert re.search(re.escape(TASKS[task][4]) + r':\s*[-\d.]+', log), \
        log[-3000:]


def test_slurm_scripts_pass_arguments(tmp_path):
    """slurm_train.sh / slurm_test.sh build the srun line (fake srun)."""
    fake = tmp_path / 'srun'
    fake.write_text('#!/usr/bin/env bash\necho "SRUN $*"\n')
    fake.chmod(0o755)
    env = dict(PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='16')
    out = run('bash', 'tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'wd',
              '--amp', env=env)
    assert '-p part --job-name=job --gres=gpu:8 --ntasks=16' in out
    assert 'tools/train.py cfg.py --work-dir=wd --amp --launcher=slurm' in out
    out = run('bash', 'tools/slurm_test.sh', 'part', 'job', 'cfg.py',
              'ck.pth', '--tta', env=env)
    assert 'tools/test.py cfg.py ck.pth --tta --launcher=slurm' in out
    out = run('bash', 'tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'wd',
              env=dict(env, PYTHON='/opt/venv/bin/python'))
    assert '--kill-on-bad-exit=1 /opt/venv/bin/python -u ' in out


def test_torchrun_launchers_honour_python(tmp_path):
    """dist_train.sh / dist_test.sh run $PYTHON (default: python3 on PATH),
    so a virtualenv's interpreter works without activating it."""
    fake = tmp_path / 'venv-python'
    fake.write_text('#!/usr/bin/env bash\necho "RUN $0 $*"\n')
    fake.chmod(0o755)
    out = run('bash', 'tools/dist_train.sh', 'cfg.py', 2, '--amp',
              env=dict(PYTHON=str(fake), PORT='29999'))
    assert out.startswith(f'RUN {fake} -m torch.distributed.run ')
    assert '--nproc_per_node=2 --master_port=29999' in out
    assert out.rstrip().endswith(
        'tools/train.py cfg.py --amp --launcher pytorch')
    out = run('bash', 'tools/dist_test.sh', 'cfg.py', 'ck.pth', 1,
              env=dict(PYTHON=str(fake)))
    assert out.rstrip().endswith(
        'tools/test.py cfg.py ck.pth --launcher pytorch')
    # without PYTHON: python3 from PATH
    shim = tmp_path / 'bin'
    shim.mkdir()
    (shim / 'python3').symlink_to(fake)
    out = run('bash', 'tools/dist_train.sh', 'cfg.py', 1,
              env=dict(PATH=f'{shim}:{os.environ["PATH"]}', PYTHON=''))
    assert out.startswith('RUN ')
    assert 'bin/python3 -m torch.distributed.run' in out
