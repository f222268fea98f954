# CPU demo: a reduced vHeat classifier on the generated ImageNet-style shapes
# (4 classes, 64x64). Inherits the real ImageNet config; overrides only what
# the demo needs. Data: python tools/make_demo_data.py (tools/demo.py runs it).
_base_ = ['../classification/vheat-tiny_16xb128_in1k.py']

data_root = 'data/demo/shapes_cls'
num_classes = 4

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 2, 1], dims=16),
        img_size=64,
        drop_path_rate=0.05),
    head=dict(num_classes=num_classes, in_channels=128),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.2)]))
data_preprocessor = dict(num_classes=num_classes)

dataset = dict(type='CustomDataset', data_root=data_root)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.6, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, data_prefix='val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 30
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=True,
         begin=1, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
auto_scale_lr = dict(base_batch_size=64)
custom_hooks = [
    dict(type='EMAHook', momentum=1e-2, priority='ABOVE_NORMAL'),
    dict(type='mmvheat.RNGStateHook'),
    # load_from / --resume / test checkpoints must fit the model
    dict(type='mmvheat.StrictLoadHook'),
]
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
