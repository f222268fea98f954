"""Reading, converting and loading vHeat checkpoints of every format.

The fixtures build files in the authors' formats: an official classification
file (``model``, ``model_ema``, optimizer, scaler, and the trainer's yacs
``CfgNode`` under ``config``:
``helpers.checkpoints.save_official_checkpoint``), an mmdet-style and a bare
file.
"""
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

from helpers.checkpoints import save_official_checkpoint
from helpers.numerics import rel_err
from mmvheat.analysis.reference_vheat import ReferenceVHeat
from mmvheat.checkpoint import (
    CheckpointError,
    adapt_freq_embeds,
    load_backbone_weights,
    map_legacy_keys,
    safe_torch_load,
)
from mmvheat.convert import convert_checkpoint
from mmvheat.models import VHeat

ARCH = dict(depths=[1, 1, 2, 1], dims=8, post_norm=True, layer_scale=0.1)
DEPTHS, DIMS = [1, 1, 2, 1], [8, 16, 32, 64]
ROOT = __import__('os').path.dirname(
    __import__('os').path.dirname(__import__('os').path.abspath(__file__)))


def official_model(num_classes=10, seed=0):
    torch.manual_seed(seed)
    ref = ReferenceVHeat(DEPTHS, DIMS, True, 0.1, img_size=64,
                         num_classes=num_classes)
    for p in ref.parameters():
        p.data.normal_(0, 0.1)
    return ref


@pytest.fixture(scope='module')
def official_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'vHeat_fake.pth'
    model, ema = official_model(seed=0), official_model(seed=1)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(1, 3, 64, 64)).sum().backward()
    opt.step()
    save_official_checkpoint(
        path, model=model.state_dict(), model_ema=ema.state_dict(),
        optimizer=opt.state_dict(), lr_scheduler={'last_epoch': 3},
        max_accuracy=81.5, scaler={'scale': 65536.0}, epoch=299)
    return path, model.state_dict(), ema.state_dict()


def test_reads_official_file_without_yacs(official_file):
    path, weights, _ = official_file
    assert 'yacs' not in sys.modules
    ckpt = safe_torch_load(str(path))
    assert type(ckpt['config']) is OrderedDict
    assert ckpt['config']['MODEL']['TYPE'] == 'vheat'
    assert ckpt['max_accuracy'] == 81.5
    torch.testing.assert_close(ckpt['model']['freq_embed.0'],
                               weights['freq_embed.0'])
    assert 'yacs' not in sys.modules


def build_classifier():
    from mmpretrain.registry import MODELS
    return MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='mmvheat.VHeat', arch=ARCH, img_size=64),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=10,
                       in_channels=64))).eval()


@pytest.mark.parametrize('ema', [False, True])
def test_converted_classifier_matches_hand_mapping(official_file, tmp_path,
                                                   ema):
    path, model_sd, ema_sd = official_file
    out, report = convert_checkpoint(path, tmp_path / 'cls.pth', use_ema=ema)
    assert report['format'] == 'official'
    converted = torch.load(out, weights_only=True)  # slim: plain types only
    assert set(converted) == {'state_dict', 'meta'}
    assert converted['meta']['weights'] == ('ema' if ema else 'model')
    clf = build_classifier()
    clf.load_state_dict(converted['state_dict'], strict=True)
    # by hand: the reference model with the official keys
    ref = official_model().eval()
    ref.load_state_dict(ema_sd if ema else model_sd)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(clf(x, mode='tensor'), ref(x)) < 1e-5


def test_double_conversion_is_noop(official_file, tmp_path):
    path = official_file[0]
    for flags in (dict(), dict(backbone_only=True, img_size=128)):
        once, _ = convert_checkpoint(path, tmp_path / 'a.pth', **flags)
        twice, _ = convert_checkpoint(once, tmp_path / 'b.pth', **flags)
        a = torch.load(once, weights_only=True)['state_dict']
        b = torch.load(twice, weights_only=True)['state_dict']
        assert list(a) == list(b)
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_fve_zero_pad_exact_and_bicubic_option():
    fve = torch.randn(56, 56, 4)
    state = {'freq_embed.0': fve.clone(), 'freq_embed.3': torch.randn(7, 7, 2)}
    changes = adapt_freq_embeds(state, {0: (128, 128), 3: (16, 16)})
    assert len(changes) == 2
    padded = state['freq_embed.0']
    assert padded.shape == (128, 128, 4)
    assert torch.equal(padded[:56, :56], fve)
    assert padded[56:].abs().sum() == 0 and padded[:, 56:].abs().sum() == 0
    state = {'freq_embed.0': fve.clone()}
    adapt_freq_embeds(state, {0: (100, 80)}, mode='bicubic')
    expected = torch.nn.functional.interpolate(
        fve.permute(2, 0, 1)[None], size=(100, 80), mode='bicubic',
        align_corners=False)[0].permute(1, 2, 0)
    torch.testing.assert_close(state['freq_embed.0'], expected)
    with pytest.raises(ValueError, match='pad'):
        adapt_freq_embeds(state, {0: (1, 1)}, mode='nearest')


def test_fve_pad_falls_back_when_target_smaller():
    state = {'freq_embed.1': torch.randn(28, 28, 3)}
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    records = []
    handler = __import__('logging').Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        changes = adapt_freq_embeds(state, {1: (8, 30)})
    finally:
        logger.removeHandler(handler)
    assert state['freq_embed.1'].shape == (8, 30, 3)
    assert changes == ['freq_embed.1: (28, 28) -> (8, 30) (bicubic)']
    assert any('zero-padding impossible' in r.getMessage() for r in records)


def backbone(img_size=128, **kwargs):
    return VHeat(ARCH, img_size=img_size, out_indices=(0, 1, 2, 3),
                 **kwargs)


def test_direct_init_equals_converting_first(official_file, tmp_path):
    path = official_file[0]
    direct = backbone(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    direct.init_weights()
    out, _ = convert_checkpoint(path, tmp_path / 'bb.pth',
                                backbone_only=True, img_size=128)
    via = backbone(init_cfg=dict(type='Pretrained', checkpoint=out))
    via.init_weights()
    a, b = direct.state_dict(), via.state_dict()
    for k in a:
        if not k.startswith('outnorm'):
            assert torch.equal(a[k], b[k]), k
    # FVEs padded to the 512-style grid (128 // 4 = 32 here), values kept
    src = official_file[1]['freq_embed.0']
    assert direct.freq_embed[0].shape == (32, 32, 8)
    assert torch.equal(direct.freq_embed[0][:16, :16], src)
    assert direct.freq_embed[0][16:].abs().sum() == 0
    # EMA on request
    ema = backbone(init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                 use_ema=True))
    ema.init_weights()
    assert torch.equal(ema.freq_embed[3][:2, :2],
                       official_file[2]['freq_embed.3'])


def test_mmengine_checkpoint_loads_with_backbone_prefix(tmp_path):
    src = backbone(img_size=64)
    sd = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    sd['neck.conv.weight'] = torch.zeros(1)
    torch.save(dict(state_dict=sd, meta=dict(epoch=12)), tmp_path / 'det.pth')
    dst = backbone(img_size=64, init_cfg=dict(type='Pretrained',
                                              checkpoint=str(tmp_path /
                                                             'det.pth')))
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def test_errors(official_file, tmp_path):
    path = official_file[0]
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_backbone_weights(backbone(), str(tmp_path / 'nope.pth'))
    # wrong arch: names the missing keys and mismatched shapes
    wrong = VHeat(dict(depths=[1, 1, 3, 1], dims=8, post_norm=True,
                       layer_scale=0.1))
    with pytest.raises(CheckpointError,
                       match=r'missing keys \(\d+\).*layers\.2\.2'):
        load_backbone_weights(wrong, str(path))
    narrow = VHeat(dict(depths=[1, 1, 2, 1], dims=4, post_norm=True,
                        layer_scale=0.1))
    with pytest.raises(CheckpointError, match='shape mismatches'):
        load_backbone_weights(narrow, str(path))
    # no layer scale in the model: gammas are unexpected
    plain = VHeat(dict(depths=[1, 1, 2, 1], dims=8, post_norm=True))
    with pytest.raises(CheckpointError, match='unexpected keys.*gamma1'):
        load_backbone_weights(plain, str(path))
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    assert all(torch.equal(before[k], v)
               for k, v in plain.state_dict().items())  # nothing loaded
    # corrupt file
    (tmp_path / 'bad.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='could not read'):
        load_backbone_weights(backbone(), str(tmp_path / 'bad.pth'))
    # unknown layout
    torch.save({'foo': 1}, tmp_path / 'odd.pth')
    with pytest.raises(CheckpointError, match='not a vHeat checkpoint'):
        load_backbone_weights(backbone(), str(tmp_path / 'odd.pth'))
    torch.save({'state_dict': {'a': torch.zeros(1)}}, tmp_path / 'noema.pth')
    with pytest.raises(CheckpointError, match='holds no EMA weights'):
        load_backbone_weights(backbone(), str(tmp_path / 'noema.pth'),
                              use_ema=True)


def test_converter_cli_prints_and_publishes(official_file, tmp_path):
    path = official_file[0]
    proc = subprocess.run([
        sys.executable, 'tools/model_converters/vheat_to_mmvheat.py',
        str(path), str(tmp_path / 'vheat.pth'), '--backbone-only',
        '--img-size', '128', '--publish'
    ], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'source format: official' in proc.stdout
    assert "dropped: ['classifier.0.weight'" in proc.stdout
    assert 'freq_embed.0: (16, 16) -> (32, 32) (pad)' in proc.stdout
    written = list(tmp_path.glob('vheat-*.pth'))
    assert len(written) == 1
    import hashlib
    sha = hashlib.sha256(written[0].read_bytes()).hexdigest()
    assert written[0].name == f'vheat-{sha[:8]}.pth'


@pytest.mark.parametrize('ours,theirs,img_size', [
    ('configs/detection/mask-rcnn_vheat-t_fpn_1x_coco.py',
     'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', 512),
    ('configs/detection/mask-rcnn_vheat-t_fpn_ms-crop-3x_coco.py',
     'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', 224),
    ('configs/segmentation/vheat-tiny_upernet_8xb2-160k_ade20k-512x512.py',
     'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_'
     'ade20k-512x512.py', 512),
])
def test_released_downstream_checkpoints_load_strictly(tmp_path, ours, theirs,
                                                       img_size,
                                                       released_checkpoint):
    import importlib
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    # mmengine resolves `lib::` only inside config files
    base = tmp_path / 'theirs.py'
    base.write_text(f'_base_ = [{theirs!r}]\n')
    path = released_checkpoint(str(base), img_size, tmp_path / 'rel.pth')
    cfg = Config.fromfile(osp.join(ROOT, ours))
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.MODELS.build(cfg.model)
    load_checkpoint(model, str(path), strict=True)  # raises on any mismatch
    saved = torch.load(path, weights_only=True)['state_dict']
    assert 'backbone.layers.0.2.0.weight' in saved  # the authors' layout
    assert set(model.state_dict()) == set(map_legacy_keys(saved,
                                                          'backbone.'))
    assert torch.equal(model.backbone.downsamples[0][0].weight,
                       saved['backbone.layers.0.2.0.weight'])
    assert torch.equal(model.backbone.outnorm2.weight,
                       saved['backbone.outnorm2.weight'])
