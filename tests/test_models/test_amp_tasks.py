"""PyTorch's mixed-precision recipe (forward and loss under
``torch.autocast``, backward outside it) on the models users train: the
three libraries' demo models built from this repository's configs and
timm's ``vheat_*`` with timm's own loss scaler. Each runs with selective
checkpointing on (the memory saver that used to crash here): its gradients
under autocast equal plain autograd's under autocast, and point the way
fp32's do (bf16 through a whole task model on random weights and tiny data
keeps the direction only roughly, hence the loose bound)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from helpers.paths import REPO_ROOT

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
MIN_COSINE = 0.8  # against fp32
SAME_COSINE = 0.9999  # selective checkpointing against plain, both bf16


def backbone_grads(model) -> torch.Tensor:
    grads = [p.grad.flatten().float() for n, p in model.named_parameters()
             if n.startswith('backbone.') and p.grad is not None]
    assert grads, 'the backbone got no gradient'
    return torch.cat(grads)


def recipe(model, loss_fn, dtype=None) -> torch.Tensor:
    """The backbone's gradient of ``loss_fn()`` with the forward under
    autocast (``dtype``; None for fp32) and the backward outside it."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)  # same samplers and drop-path draws
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                        enabled=dtype is not None):
        losses = loss_fn()
        loss = sum(v.float().sum() for k, v in losses.items()
                   if 'loss' in k and isinstance(v, torch.Tensor))
    assert torch.isfinite(loss)
    loss.backward()
    return backbone_grads(model)


def build(config: str, scope: str):
    import importlib

    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(osp.join(DEMO, config))
    cfg.model.backbone.selective_cp = True
    if cfg.get('data_preprocessor'):  # the runner's rule
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    torch.manual_seed(0)
    # the library's scope while building only: no default scope leaks into
    # the other tests of the process
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.model).train()


def cosine(a, b) -> float:
    return torch.nn.functional.cosine_similarity(a, b, dim=0).item()


def set_selective(model, flag: bool) -> None:
    for stage in model.backbone.layers:
        for block in stage:
            block.selective_cp = flag


def check_recipe(model, loss) -> None:
    """Selective checkpointing under the recipe: as plain autograd under
    the same autocast, and roughly fp32's direction."""
    amp = recipe(model, loss, torch.bfloat16)
    set_selective(model, False)
    plain = recipe(model, loss, torch.bfloat16)
    set_selective(model, True)
    assert cosine(amp, plain) > SAME_COSINE
    assert cosine(amp, recipe(model, loss)) > MIN_COSINE


def test_mmpretrain_classifier():
    from mmpretrain.structures import DataSample
    model = build('vheat-demo_4xb16_shapes-cls.py', 'mmpretrain')
    samples = [DataSample().set_gt_label(i % 4) for i in range(4)]
    data = model.data_preprocessor(
        dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
                     for _ in range(4)], data_samples=samples), True)
    check_recipe(model, lambda: model(**data, mode='loss'))


def test_mmseg_segmentor():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    model = build('vheat-demo_upernet_4xb8-1k_shapes-128x128.py', 'mmseg')
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(96, 112),
                                             ori_shape=(96, 112),
                                             pad_shape=(96, 112)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 4, (1, 96, 112)))
        samples.append(sample)
    data = model.data_preprocessor(
        dict(inputs=[torch.randint(0, 255, (3, 96, 112), dtype=torch.uint8)
                     for _ in range(2)], data_samples=samples), True)
    check_recipe(model, lambda: model(**data, mode='loss'))


def test_mmdet_mask_rcnn():
    """Mask R-CNN: mmcv's CPU kernels (NMS, RoIAlign) take fp32 only (its
    CUDA kernels take half), so on the CPU the backbone and FPN run under
    autocast and the heads in fp32 on their features."""
    from mmdet.testing import demo_mm_inputs
    model = build('mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py', 'mmdet')
    packed = demo_mm_inputs(2, [[3, 96, 128], [3, 80, 112]],
                            num_items=[3, 2], num_classes=4, with_mask=True)
    data = model.data_preprocessor(packed, True)
    features = model.extract_feat

    def loss():
        outer = dict(enabled=torch.is_autocast_enabled('cpu'),
                     dtype=torch.get_autocast_dtype('cpu'))

        def autocast_features(inputs):
            with torch.autocast('cpu', **outer):
                return tuple(f.float() for f in features(inputs))

        model.extract_feat = autocast_features
        with torch.autocast('cpu', enabled=False):
            return model(**data, mode='loss')

    check_recipe(model, loss)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_timm_train_step(dtype):
    """timm's train.py step: forward and loss under autocast, then (fp16)
    timm's ``NativeScaler`` does the scaled backward and the step."""
    import timm
    from timm.utils import NativeScaler

    import mmvheat.timm  # noqa: F401
    model = timm.create_model('vheat_tiny', depths=[1, 1, 2, 1], dims=8,
                              img_size=48, num_classes=3,
                              selective_cp=True).train()
    optim = torch.optim.SGD(model.parameters(), lr=0.0)
    x, y = torch.randn(4, 3, 48, 48), torch.randint(0, 3, (4, ))

    def step(amp_dtype):
        optim.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=amp_dtype or torch.bfloat16,
                            enabled=amp_dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        if amp_dtype == torch.float16:  # unscales the gradients in place
            NativeScaler(device='cpu')(loss, optim,
                                       parameters=model.parameters())
        else:
            loss.backward()
            optim.step()
        return torch.cat([p.grad.flatten().float()
                          for p in model.parameters() if p.grad is not None])

    ref = step(None)
    amp = step(dtype)
    assert torch.isfinite(amp).all()
    assert cosine(amp, ref) > 0.98
