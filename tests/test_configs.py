"""Every config under configs/ loads and builds; each task runs a real loss
and predict step; the optimizer applies weight decay as the authors did."""
import glob
import importlib
import importlib.util
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope

from mmvheat.models import VHeat

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and f'{osp.sep}demo{osp.sep}' not in p)
# configs/demo/ (reduced archs on generated data) is tested in
# tests/test_tools/test_demo.py.
TINY_ARCH = dict(depths=[1, 1, 1, 1], dims=8)
TINY_DIMS = [8, 16, 32, 64]

CLS_URL = ('https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/'
           'vHeat_{}.pth')
T, S, B = (CLS_URL.format(a) for a in ('tiny', 'small', 'base'))
# config name -> (arch, drop_path_rate, img_size, backbone checkpoint)
EXPECTED = {
    'vheat-tiny_16xb128_in1k': ('tiny', 0.1, 224, None),
    'vheat-small_16xb128_in1k': ('small', 0.3, 224, None),
    'vheat-base_16xb128_in1k': ('base', 0.5, 224, None),
    'mask-rcnn_vheat-t_fpn_1x_coco': ('tiny', 0.1, 512, T),
    'mask-rcnn_vheat-s_fpn_1x_coco': ('small', 0.3, 512, S),
    'mask-rcnn_vheat-b_fpn_1x_coco': ('base', 0.5, 512, B),
    'mask-rcnn_vheat-t_fpn_ms-crop-3x_coco': ('tiny', 0.2, 224, T),
    'mask-rcnn_vheat-s_fpn_ms-crop-3x_coco': ('small', 0.4, 512, S),
    'vheat-tiny_upernet_8xb2-160k_ade20k-512x512': ('tiny', 0.3, 512, T),
    # no small UperNet was released; the small ImageNet file is public
    'vheat-small_upernet_8xb2-160k_ade20k-512x512': ('small', 0.4, 512, S),
    'vheat-base_upernet_8xb2-160k_ade20k-512x512': ('base', 0.5, 512, B),
}

def load(path) -> Config:
    return Config.fromfile(osp.join(ROOT, path))


def build(cfg: Config):
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    importlib.import_module('mmvheat.models')
    if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return registry.MODELS.build(cfg.model)


def test_all_configs_found():
    names = {osp.splitext(osp.basename(p))[0] for p in CONFIGS}
    assert set(EXPECTED) <= names


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds(path):
    cfg = load(path)
    name = osp.splitext(osp.basename(path))[0]
    arch, dpr, img_size, checkpoint = EXPECTED[name]
    assert cfg.custom_imports.imports == ['mmvheat.models', 'mmvheat.engine']
    assert 'checkpoint' in cfg and 'data_root' in cfg
    bb = cfg.model.backbone
    assert (bb.arch, bb.drop_path_rate, bb.img_size) == (arch, dpr, img_size)
    assert cfg.checkpoint == checkpoint
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == cfg.data_root
    model = build(cfg)
    backbone = model.backbone
    assert type(backbone) is VHeat
    assert backbone.img_size == (img_size, img_size)
    dims = backbone.dims
    if cfg.default_scope == 'mmdet':
        assert cfg.model.neck.in_channels == dims
        assert backbone.out_indices == (0, 1, 2, 3)
    elif cfg.default_scope == 'mmseg':
        assert cfg.model.decode_head.in_channels == dims
        assert cfg.model.auxiliary_head.in_channels == dims[2]
        assert cfg.model.decode_head.num_classes == 150
    else:
        assert cfg.model.head.in_channels == dims[3]
        assert backbone.out_indices == (3, )


def test_demo_configs_train_from_scratch_offline():
    """The demo configs inherit the task configs but never name weights to
    download (reduced archs; the demo runs offline)."""
    demos = glob.glob(osp.join(ROOT, 'configs', 'demo', '*.py'))
    assert len(demos) == 3
    for path in demos:
        cfg = Config.fromfile(path)
        assert cfg.checkpoint is None, path
        assert cfg.model.backbone.init_cfg.checkpoint is None, path
        assert cfg.get('load_from') is None, path


def test_recipes():
    cls = load('configs/classification/vheat-tiny_16xb128_in1k.py')
    assert cls.optim_wrapper.optimizer.lr == 2e-3
    assert cls.optim_wrapper.optimizer.weight_decay == 0.08
    assert cls.optim_wrapper.clip_grad.max_norm == 5.0
    assert cls.auto_scale_lr.base_batch_size == 2048
    assert cls.train_dataloader.batch_size == 128
    assert cls.train_cfg.max_epochs == 300
    warm, cos = cls.param_scheduler
    assert (warm.start_factor, warm.end) == (1e-3, 20)
    assert (cos.begin, cos.eta_min_ratio) == (20, 1e-2)
    assert any(h.type == 'EMAHook' for h in cls.custom_hooks)
    assert cls.model.head.loss.label_smooth_val == 0.1
    det = load('configs/detection/mask-rcnn_vheat-t_fpn_1x_coco.py')
    assert det.optim_wrapper.optimizer.lr == 1e-4
    assert det.optim_wrapper.optimizer.weight_decay == 0.05
    assert det.train_cfg.max_epochs == 12
    assert det.param_scheduler[1].milestones == [8, 11]
    assert det.train_dataloader.batch_size == 2
    det3x = load('configs/detection/mask-rcnn_vheat-t_fpn_ms-crop-3x_coco.py')
    assert det3x.train_cfg.max_epochs == 36
    assert det3x.param_scheduler[1].milestones == [27, 33]
    seg = load(
        'configs/segmentation/vheat-tiny_upernet_8xb2-160k_ade20k-512x512.py')
    assert seg.optim_wrapper.optimizer.lr == 6e-5
    assert seg.optim_wrapper.optimizer.weight_decay == 0.01
    assert seg.train_cfg.max_iters == 160000
    assert seg.model.test_cfg == dict(mode='slide', crop_size=(512, 512),
                                      stride=(341, 341))
    assert seg.param_scheduler[0].start_factor == 1e-6
    assert seg.param_scheduler[0].end == 1500
    assert seg.train_dataloader.batch_size == 2


def shrink(cfg: Config, **arch) -> Config:
    """Tiny backbone (and heads) for CPU steps; the config file is
    untouched. ``arch`` adds post_norm/layer_scale to the tiny arch; the
    released ImageNet weights (a URL) would not fit it: random init."""
    cfg.model.backbone.arch = dict(TINY_ARCH, **arch)
    cfg.model.backbone.init_cfg.checkpoint = None
    cfg.model.backbone.img_size = 64
    if cfg.default_scope == 'mmdet':
        cfg.model.neck.in_channels = TINY_DIMS
    elif cfg.default_scope == 'mmseg':
        cfg.model.decode_head.in_channels = TINY_DIMS
        cfg.model.decode_head.channels = 16
        cfg.model.auxiliary_head.in_channels = TINY_DIMS[2]
        cfg.model.auxiliary_head.channels = 8
        cfg.model.data_preprocessor.size = (64, 64)
        cfg.model.test_cfg = dict(mode='slide', crop_size=(48, 48),
                                  stride=(32, 32))
    else:
        cfg.model.head.in_channels = TINY_DIMS[3]
    return cfg


def det_batch():
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    sample = DetDataSample(metainfo=dict(img_shape=(64, 80),
                                         ori_shape=(64, 80),
                                         scale_factor=(1., 1.)))
    masks = np.zeros((2, 64, 80), np.uint8)
    masks[0, 5:30, 10:40] = 1
    masks[1, 30:60, 40:75] = 1
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[10., 5., 40., 30.], [40., 30., 75., 60.]]),
        labels=torch.tensor([0, 3]),
        masks=BitmapMasks(masks, 64, 80))
    return dict(inputs=[torch.randint(0, 255, (3, 64, 80), dtype=torch.uint8)],
                data_samples=[sample])


def seg_batch():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(2):  # BN in the PPM needs more than one value
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64),
                                             ori_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 150, (1, 64, 64)))
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
                        for _ in samples],
                data_samples=samples)


def cls_batch():
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i) for i in (1, 7)]
    return dict(inputs=torch.randint(0, 255, (2, 3, 64, 64),
                                     dtype=torch.uint8),
                data_samples=samples)


@pytest.mark.parametrize('path,make_batch', [
    ('configs/detection/mask-rcnn_vheat-t_fpn_1x_coco.py', det_batch),
    ('configs/segmentation/vheat-tiny_upernet_8xb2-160k_ade20k-512x512.py',
     seg_batch),
    ('configs/classification/vheat-tiny_16xb128_in1k.py', cls_batch),
])
def test_loss_and_predict_step(path, make_batch):
    cfg = shrink(load(path))
    model = revert_sync_batchnorm(build(cfg))
    model.init_weights()
    model.train()
    data = model.data_preprocessor(make_batch(), True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k and
                isinstance(v, torch.Tensor))
    if isinstance(total, list):
        total = sum(total)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.freq_embed[0].grad is not None
    model.eval()
    with torch.no_grad():
        preds = model.test_step(make_batch())
    assert len(preds) == 1 or len(preds) == 2
    if cfg.default_scope == 'mmdet':
        assert 'masks' in preds[0].pred_instances
    elif cfg.default_scope == 'mmseg':
        assert preds[0].pred_sem_seg.data.shape == (1, 64, 64)
    else:
        assert preds[0].pred_score.shape == (1000, )


def decay_by_name(cfg):
    from mmengine.optim import build_optim_wrapper
    model = build(cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return {names[id(p)]: g['weight_decay']
            for g in wrapper.optimizer.param_groups for p in g['params']}


@pytest.mark.parametrize('path,wd', [
    ('configs/detection/mask-rcnn_vheat-t_fpn_1x_coco.py', 0.05),
    ('configs/segmentation/vheat-tiny_upernet_8xb2-160k_ade20k-512x512.py',
     0.01),
])
def test_downstream_weight_decay_as_authors(path, wd):
    """custom_keys={'norm': 0}: every name containing 'norm' undecayed;
    downsample LayerNorms (the authors' layers.i.N.1, our downsamples.i.1),
    FVEs, biases, gammas decayed."""
    cfg = load(path)
    cfg = shrink(cfg, post_norm=True, layer_scale=1e-5)
    decay = decay_by_name(cfg)
    for name in ('backbone.layers.0.0.norm1.weight',
                 'backbone.layers.0.0.op.out_norm.bias',
                 'backbone.outnorm2.weight',
                 'backbone.patch_embed.norm1.weight'):
        assert decay[name] == 0, name
    for name in ('backbone.downsamples.0.1.weight', 'backbone.freq_embed.0',
                 'backbone.layers.1.0.op.linear.bias',
                 'backbone.layers.1.0.gamma1',
                 'backbone.layers.2.0.mlp.fc1.weight'):
        assert decay[name] == wd, name
    for name, value in decay.items():
        assert value == (0 if 'norm' in name else wd), name


def test_classification_weight_decay_as_authors():
    """wd 0.08 on all but 1-D parameters; the FVEs are decayed."""
    cfg = load('configs/classification/vheat-tiny_16xb128_in1k.py')
    cfg = shrink(cfg, post_norm=True, layer_scale=1e-5)
    model = build(cfg)
    decay = decay_by_name(cfg)
    params = dict(model.named_parameters())
    assert decay['backbone.freq_embed.1'] == 0.08
    assert decay['backbone.layers.0.0.gamma2'] == 0
    assert decay['head.fc.bias'] == 0
    for name, value in decay.items():
        assert value == (0 if params[name].ndim == 1 else 0.08), name


RELEASED = re.compile(
    r'^https://github\.com/MzeroMiko/vHeat/releases/download/'
    r'(vheatcls|vheatdet|vheatseg)/vHeat_(tiny|small|base)'
    r'(|_det|_det_ms3x|_seg)\.pth$')
SUFFIX = {'vheatcls': ('',), 'vheatdet': ('_det', '_det_ms3x'),
          'vheatseg': ('_seg',)}
ARCH_IN_NAME = {'tiny': ('vheat-tiny', 'vheat-t_'),
                'small': ('vheat-small', 'vheat-s_'),
                'base': ('vheat-base', 'vheat-b_')}


def test_model_index_and_metafiles():
    """model-index.yml lists every metafile; every model's config exists
    and its weights are the authors' release for that model."""
    import yaml
    index = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
    metafiles = sorted(index['Import'])
    assert metafiles == sorted(
        osp.relpath(p, ROOT)
        for p in glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yml')))
    listed, weights = [], {}
    for meta in metafiles:
        data = yaml.safe_load(open(osp.join(ROOT, meta)))
        collections = {c['Name'] for c in data['Collections']}
        for model in data['Models']:
            assert model['In Collection'] in collections, model
            assert osp.isfile(osp.join(ROOT, model['Config'])), model
            assert osp.splitext(osp.basename(model['Config']))[0] == \
                model['Name']
            assert model['Results'], model
            listed.append(model['Config'])
            if 'Weights' in model:
                weights[model['Name']] = model['Weights']
    assert sorted(listed) == CONFIGS
    for name, url in weights.items():
        match = RELEASED.match(url)
        assert match, (name, url)
        release, arch, suffix = match.groups()
        assert any(tag in name for tag in ARCH_IN_NAME[arch]), (name, url)
        assert suffix in SUFFIX[release], (name, url)
        assert (suffix == '_det_ms3x') == ('3x' in name), (name, url)
    # the ten released files, each once; no small UperNet was published
    assert len(set(weights.values())) == len(weights) == 10
    assert 'vheat-small_upernet_8xb2-160k_ade20k-512x512' not in weights

def load_train_tool():
    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_from_scratch_flag_and_cfg_option():
    """`--no-pretrained` clears the config's ImageNet URL; so does
    `--cfg-options model.backbone.init_cfg.checkpoint=None`."""
    from mmvheat.utils import load_config
    train = load_train_tool()
    path = osp.join(ROOT, 'configs/detection/mask-rcnn_vheat-s_fpn_1x_coco.py')
    args = train.parse_args([path, '--no-pretrained'])
    cfg = train.apply_args(load_config(path), args)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint=None)
    args = train.parse_args(
        [path, '--cfg-options', 'model.backbone.init_cfg.checkpoint=None'])
    cfg = load_config(path, args.cfg_options)
    assert cfg.model.backbone.init_cfg.checkpoint is None
    cfg = load_config(path)  # without either: the small ImageNet file
    assert cfg.model.backbone.init_cfg.checkpoint.endswith('vHeat_small.pth')


def test_clear_pretrained_walks_lists_and_nested_modules():
    from mmvheat.utils import clear_pretrained
    model = dict(
        backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='a.pth')),
        heads=[dict(init_cfg=[dict(type='Normal', std=0.01),
                              dict(type='Pretrained', checkpoint='b.pth')])],
        neck=dict(init_cfg=dict(type='Pretrained', checkpoint=None)))
    cleared = clear_pretrained(model)
    assert cleared == ['model.backbone.init_cfg: a.pth',
                       'model.heads[0].init_cfg[1]: b.pth']
    assert model['backbone']['init_cfg']['checkpoint'] is None
    assert model['heads'][0]['init_cfg'][1]['checkpoint'] is None
    assert model['heads'][0]['init_cfg'][0] == dict(type='Normal', std=0.01)
    assert clear_pretrained(model) == []
