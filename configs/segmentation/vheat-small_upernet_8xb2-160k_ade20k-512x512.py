_base_ = ['./vheat-tiny_upernet_8xb2-160k_ade20k-512x512.py']

checkpoint = 'https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_small.pth'  # noqa
model = dict(
    backbone=dict(
        arch='small', drop_path_rate=0.4,
        init_cfg=dict(checkpoint=checkpoint)))
