"""A tiny mmpretrain classifier config on generated ImageNet-style data,
and small files in the authors' format for it, for the tools' error paths
(tests/test_strict_loading.py, tests/test_tools/test_tidy_errors.py,
tests/test_timm_download.py)."""
import os

import torch

from .checkpoints import save_official_checkpoint
from .paths import REPO_ROOT
from .reference import reference_for

# TINY_CLS_ARCH is the backbone's arch; the head has TINY_CLS_CLASSES
# classes.
TINY_CLS_ARCH = dict(depths=[1, 1, 1, 1], dims=8)
TINY_CLS_CLASSES = 4
TINY_CLS_CONFIG = """
_base_ = [{base!r}]
data_root = {data!r}
model = dict(backbone=dict(arch=dict(_delete_=True, **{arch!r}), img_size=64),
             head=dict(num_classes={classes}, in_channels=64))
data_preprocessor = dict(num_classes={classes})
dataset = dict(type='CustomDataset', data_root=data_root)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, data_prefix='train',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, data_prefix='val',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1))
"""


def write_tiny_cls_config(folder, data_root: str, **overrides) -> str:
    """Write :data:`TINY_CLS_CONFIG` (on the real ImageNet config) into
    ``folder``; ``overrides`` are appended as ``key = repr(value)`` lines.
    Returns the path."""
    text = TINY_CLS_CONFIG.format(
        base=os.path.join(REPO_ROOT,
                          'configs/classification/vheat-tiny_16xb128_in1k.py'),
        data=str(data_root), arch=TINY_CLS_ARCH, classes=TINY_CLS_CLASSES)
    text += ''.join(f'{k} = {v!r}\n' for k, v in overrides.items())
    path = os.path.join(str(folder), 'tiny_cls.py')
    with open(path, 'w') as f:
        f.write(text)
    return path


def save_tiny_official(path, arch=None, num_classes=TINY_CLS_CLASSES,
                       seed=0) -> dict:
    """An authors'-format classification file (``model`` + yacs config) of
    ``arch`` (default :data:`TINY_CLS_ARCH`) at 64x64; returns its
    weights."""
    from mmvheat.models import VHeat
    torch.manual_seed(seed)
    model = VHeat(arch or TINY_CLS_ARCH, img_size=64)
    ref = reference_for(model, num_classes=num_classes)
    for p in ref.parameters():
        p.data.normal_(0, 0.1)
    save_official_checkpoint(path, model=ref.state_dict(), epoch=300)
    return ref.state_dict()
