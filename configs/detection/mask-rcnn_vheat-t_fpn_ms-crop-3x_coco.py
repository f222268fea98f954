# Mask R-CNN + FPN with vHeat-T, 3x schedule with multi-scale + crop training
# (36 epochs, steps at 27 and 33). As the authors' 3x tiny config: drop path
# 0.2 and img_size 224 (FVEs on the 56/28/14/7 grid), so their released 3x
# checkpoint loads.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py']
custom_imports = dict(
    imports=['mmvheat.models', 'mmvheat.engine'],
    allow_failed_imports=False)

# ImageNet weights (the authors' file, cached on first use; or a local path;
# --no-pretrained in tools/train.py trains from scratch).
checkpoint = 'https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_tiny.pth'  # noqa
data_root = 'data/coco/'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvheat.VHeat',
        arch='tiny',
        img_size=224,
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    paramwise_cfg=dict(_delete_=True,
                       custom_keys={'norm': dict(decay_mult=0.)}))

train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
val_evaluator = dict(
    ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = dict(
    ann_file=data_root + 'annotations/instances_val2017.json')

# RNG states in checkpoints: a resumed run continues the same random stream.
custom_hooks = [
    dict(type='mmvheat.RNGStateHook'),
    # load_from / --resume / test checkpoints must fit the model
    dict(type='mmvheat.StrictLoadHook'),
]
