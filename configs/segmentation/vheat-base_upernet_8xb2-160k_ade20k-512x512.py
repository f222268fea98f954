_base_ = ['./vheat-tiny_upernet_8xb2-160k_ade20k-512x512.py']

checkpoint = 'https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_base.pth'  # noqa
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.5,
                  init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
