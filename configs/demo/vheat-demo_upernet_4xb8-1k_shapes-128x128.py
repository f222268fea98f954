# CPU demo: UperNet with a reduced vHeat on the generated ADE20K-layout shapes
# (4 classes + "other", 128x128). Inherits the real ADE20K config; overrides
# only what the demo needs. Data: python tools/make_demo_data.py.
_base_ = ['../segmentation/vheat-tiny_upernet_8xb2-160k_ade20k-512x512.py']

data_root = 'data/demo/shapes_ade'
crop_size = (128, 128)
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'diamond'),
    palette=[[220, 40, 40], [40, 200, 40], [30, 120, 220], [220, 200, 30]])

# From scratch: the reduced arch has no released weights (and the demo
# runs offline).
checkpoint = None
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 2, 1], dims=16),
        img_size=128,
        drop_path_rate=0.05,
        init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(
        in_channels=[16, 32, 64, 128], channels=64, num_classes=4),
    auxiliary_head=dict(in_channels=64, channels=32, num_classes=4),
    test_cfg=dict(mode='whole'))

dataset = dict(
    type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
    img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True)
         for r in (0.75, 1.0, 1.25)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, pipeline=train_pipeline,
                 data_prefix=dict(img_path='images/training',
                                  seg_map_path='annotations/training')))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, pipeline=test_pipeline,
                 data_prefix=dict(img_path='images/validation',
                                  seg_map_path='annotations/validation')))
test_dataloader = val_dataloader

max_iters = 1000
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=250, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
