_base_ = ['./mask-rcnn_vheat-t_fpn_1x_coco.py']

checkpoint = 'https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_small.pth'  # noqa
model = dict(
    backbone=dict(
        arch='small', drop_path_rate=0.3,
        init_cfg=dict(checkpoint=checkpoint)))
