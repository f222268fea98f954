# Mask R-CNN + FPN with vHeat-T, 1x schedule, as the authors trained it
# (mmdet's Swin recipe: AdamW lr 1e-4, wd 0.05, no decay on parameters whose
# names contain 'norm', 2 images x 8 GPUs, 12 epochs, steps at 8 and 11).
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py']
custom_imports = dict(
    imports=['mmvheat.models', 'mmvheat.engine'],
    allow_failed_imports=False)

# ImageNet weights: the authors' vHeat_tiny.pth, downloaded once into the
# cache (FVEs are zero-padded to the 512 grid as the authors did); a local
# path (official or converted file) works too. To train from scratch:
# tools/train.py ... --no-pretrained (or checkpoint=None).
checkpoint = 'https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_tiny.pth'  # noqa
data_root = 'data/coco/'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvheat.VHeat',
        arch='tiny',
        img_size=512,
        drop_path_rate=0.1,
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
