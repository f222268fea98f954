# UperNet (+ auxiliary FCN head on stage 3) with vHeat-T on ADE20K, as the
# authors trained it (mmseg's Swin recipe: 2 images x 8 GPUs, 512x512 crops,
# AdamW lr 6e-5, wd 0.01 with no decay on 'norm' parameters, 1500 warm-up
# iterations then poly to 0 at 160k; sliding-window test, crop 512, stride
# 341). `tools/test.py ... --tta` gives mIoU (ms+flip).
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'  # noqa
]
custom_imports = dict(
    imports=['mmvheat.models', 'mmvheat.engine'],
    allow_failed_imports=False)

# ImageNet weights: the authors' vHeat_tiny.pth, downloaded once into the
# cache (FVEs are zero-padded to the 512 grid as the authors did); a local
# path (official or converted file) works too. To train from scratch:
# tools/train.py ... --no-pretrained (or checkpoint=None).
checkpoint = 'https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_tiny.pth'  # noqa
data_root = 'data/ade/ADEChallengeData2016'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvheat.VHeat',
        arch='tiny',
        img_size=512,
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))

optim_wrapper = dict(
    paramwise_cfg=dict(_delete_=True,
                       custom_keys={'norm': dict(decay_mult=0.)}))

train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))

# RNG states in checkpoints: a resumed run continues the same random stream.
custom_hooks = [
    dict(type='mmvheat.RNGStateHook'),
    # load_from / --resume / test checkpoints must fit the model
    dict(type='mmvheat.StrictLoadHook'),
]
