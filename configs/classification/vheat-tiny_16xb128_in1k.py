# vHeat-T on ImageNet-1k: the authors' recipe (16 GPUs x 128 = 2048 images,
# AdamW lr 2e-3, 300 epochs with 20 warm-up, cosine to lr/100, wd 0.08 except
# on 1-D parameters, clip 5.0, label smoothing 0.1, RandAugment m9-mstd0.5,
# mixup 0.8 / cutmix 1.0, random erasing 0.25, bicubic, EMA).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmvheat.models', 'mmvheat.engine'],
    allow_failed_imports=False)

# Pretrained weights for fine-tuning (an official vHeat_*.pth or a converted
# file); None trains from scratch (a warning says the backbone is random).
checkpoint = None
data_root = 'data/imagenet'

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmvheat.VHeat',
        arch='tiny',
        img_size=224,
        drop_path_rate=0.1,
        out_indices=(3, ),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(type='GlobalAveragePooling'),
    # The official head: outnorm3 (LayerNorm) -> average pool -> Linear.
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        init_cfg=None,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
    ],
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

train_dataloader = dict(batch_size=128, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))

optim_wrapper = dict(
    optimizer=dict(
        type='AdamW',
        lr=2e-3,
        weight_decay=0.08,
        eps=1e-8,
        betas=(0.9, 0.999)),
    # No decay on 1-D parameters (norms, biases, gamma1/gamma2); the FVEs
    # and all weights are decayed.
    paramwise_cfg=dict(_delete_=True, flat_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        end=20,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=1e-2,
        by_epoch=True,
        begin=20,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
auto_scale_lr = dict(base_batch_size=2048)

custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL'),
    # RNG states in checkpoints: a resumed run continues the same stream.
    dict(type='mmvheat.RNGStateHook'),
    # load_from / --resume / test checkpoints must fit the model
    dict(type='mmvheat.StrictLoadHook'),
]
