# As the authors' 3x small config: drop path 0.4 and img_size 512.
_base_ = ['./mask-rcnn_vheat-t_fpn_ms-crop-3x_coco.py']

checkpoint = 'https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_small.pth'  # noqa
model = dict(
    backbone=dict(
        arch='small', img_size=512, drop_path_rate=0.4,
        init_cfg=dict(checkpoint=checkpoint)))
