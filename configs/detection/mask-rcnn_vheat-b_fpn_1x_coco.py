_base_ = ['./mask-rcnn_vheat-t_fpn_1x_coco.py']

checkpoint = 'https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_base.pth'  # noqa
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.5,
                  init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
