"""vHeat in timm (mmvheat.timm): registry, model API, features_only,
pretrained files in the authors' format, parity with mmpretrain's classifier
and the authors' code, error cases. Reduced archs through create_model's
depths/dims kwargs keep it fast."""
import os
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import pytest
import timm
import torch
from mmengine.config import Config

import mmvheat.timm  # noqa: F401 (registers the models)
from helpers.checkpoints import save_official_checkpoint
from helpers.numerics import randomise, rel_err
from helpers.paths import REPO_ROOT
from mmvheat.analysis.reference_vheat import ReferenceVHeat
from mmvheat.checkpoint import CheckpointError
from mmvheat.timm import VHeatTimm, vheat_model_names

# post_norm + layer scale (the small/base block variant) and pre-norm (tiny)
POST = dict(depths=[1, 2, 1, 1], dims=16, post_norm=True, layer_scale=0.5)
PRE = dict(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32])
CLS_CONFIG = osp.join(REPO_ROOT, 'configs', 'classification',
                      'vheat-{}_16xb128_in1k.py')


def small(arch=POST, **kwargs):
    """A reduced vheat_small (POST) or vheat_tiny (PRE: no layer scale,
    pre-norm, as tiny)."""
    kwargs.setdefault('img_size', 64)
    name = 'vheat_tiny' if arch is PRE else 'vheat_small'
    return timm.create_model(name, **arch, **kwargs)


def mmpretrain_classifier(arch, num_classes, img_size):
    """Our mmpretrain ImageNet classifier (the config's model) on a
    reduced arch."""
    from mmpretrain.registry import MODELS

    import mmvheat.models  # noqa: F401
    cfg = Config.fromfile(CLS_CONFIG.format('tiny')).model
    cfg.backbone.update(arch=dict(arch), img_size=img_size, init_cfg=None)
    cfg.head.update(num_classes=num_classes, in_channels=cfg.backbone.arch[
        'dims'] * 8 if isinstance(arch['dims'], int) else arch['dims'][3])
    return MODELS.build(cfg)


def to_official(state: dict) -> OrderedDict:
    """Our (timm = mmpretrain) keys -> the authors' classifier keys."""
    out = OrderedDict()
    for key, value in state.items():
        key = key.replace('backbone.outnorm3.', 'classifier.0.')
        key = key.replace('head.fc.', 'classifier.3.')
        out[key.replace('backbone.', '', 1)] = value.clone()
    return out


def reference_classifier(arch, img_size=64, num_classes=10, seed=0):
    """The authors' classifier with random weights."""
    torch.manual_seed(seed)
    dims = arch['dims']
    dims = [dims * 2**i for i in range(4)] if isinstance(dims, int) else dims
    ref = ReferenceVHeat(arch['depths'], dims, arch.get('post_norm', False),
                         arch.get('layer_scale'), img_size=img_size,
                         num_classes=num_classes)
    for p in ref.parameters():
        p.data.normal_(0, 0.1)
    return ref.eval()


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    """An authors'-format file of the POST arch: `model`, `model_ema`,
    trainer state and a yacs CfgNode."""
    model = reference_classifier(POST, seed=0)
    ema = reference_classifier(POST, seed=1)
    path = tmp_path_factory.mktemp('timm') / 'vHeat_fake.pth'
    save_official_checkpoint(path, model=model.state_dict(),
                             model_ema=ema.state_dict(), epoch=299)
    return str(path), model, ema


# ---------------------------------------------------------------- registry
def test_registered_with_pretrained_cfgs():
    assert vheat_model_names() == ['vheat_base', 'vheat_small', 'vheat_tiny']
    assert timm.list_models('vheat*') == vheat_model_names()
    assert timm.list_pretrained('vheat*') == [
        f'{n}.in1k' for n in vheat_model_names()
    ]
    # crop_pct, mean/std and interpolation from our test pipeline
    cfg = Config.fromfile(CLS_CONFIG.format('tiny'))
    resize, crop = cfg.test_pipeline[1], cfg.test_pipeline[2]
    assert (resize.type, crop.type) == ('ResizeEdge', 'CenterCrop')
    mean = tuple(m / 255 for m in cfg.data_preprocessor.mean)
    std = tuple(s / 255 for s in cfg.data_preprocessor.std)
    for name, file in [('vheat_tiny', 'vHeat_tiny.pth'),
                       ('vheat_small', 'vHeat_small.pth'),
                       ('vheat_base', 'vHeat_base.pth')]:
        pc = timm.get_pretrained_cfg(name).to_dict()
        assert pc['url'] == ('https://github.com/MzeroMiko/vHeat/releases/'
                             f'download/vheatcls/{file}')
        assert pc['input_size'] == (3, crop.crop_size, crop.crop_size)
        assert pc['crop_pct'] == crop.crop_size / resize.scale
        assert pc['interpolation'] == resize.interpolation == 'bicubic'
        assert pc['mean'] == pytest.approx(mean, abs=1e-4)
        assert pc['std'] == pytest.approx(std, abs=1e-4)
        assert pc['num_classes'] == 1000
        assert pc['custom_load'] is True


def test_full_size_model_is_mmpretrain_classifier_layout():
    """vheat_tiny: the released code's 30.85M parameters and 241 tensors,
    and exactly the keys and shapes of our mmpretrain classifier config."""
    model = timm.create_model('vheat_tiny')
    assert isinstance(model, VHeatTimm)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == \
        30.85
    assert len(model.state_dict()) == 241
    from mmpretrain.registry import MODELS

    import mmvheat.models  # noqa: F401
    cfg = Config.fromfile(CLS_CONFIG.format('tiny')).model
    cfg.backbone.init_cfg = None
    theirs = MODELS.build(cfg).state_dict()
    ours = model.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert model.backbone.drop_path_rate == 0.1
    assert timm.create_model('vheat_base', **PRE).backbone.drop_path_rate \
        == 0.5


# ---------------------------------------------------------------- fidelity
@pytest.mark.parametrize('arch', [POST, PRE])
def test_logits_equal_mmpretrain_classifier(arch):
    clf = mmpretrain_classifier(arch, num_classes=10, img_size=64).eval()
    randomise(clf)
    model = small(arch=arch, num_classes=10).eval()
    model.load_state_dict(clf.state_dict(), strict=True)
    for size in [(64, 64), (75, 53)]:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            ours, theirs = model(x), clf(x, mode='tensor')
        assert ours.shape == (2, 10)
        assert rel_err(ours, theirs) < 1e-5
        with torch.no_grad():
            pooled = model.forward_head(model.forward_features(x),
                                        pre_logits=True)
            assert rel_err(pooled, clf.extract_feat(x)[0]) < 1e-5


def test_pretrained_authors_file_matches_authors_model(official):
    """timm.create_model(..., pretrained=True, pretrained_cfg_overlay=
    dict(file=...)) reads the authors' file (yacs CfgNode inside) and
    computes their classifier; pretrained_use_ema takes model_ema."""
    path, ref, ema = official
    for use_ema, expect in [(False, ref), (True, ema)]:
        model = small(pretrained=True, num_classes=10,
                      pretrained_cfg_overlay=dict(file=path),
                      pretrained_use_ema=use_ema).eval()
        assert 'yacs' not in sys.modules
        assert model.pretrained_cfg['file'] == path
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert rel_err(model(x), expect(x)) < 1e-5


def test_pretrained_at_another_img_size(official):
    """img_size 96 from a 64 file: FVEs resized bicubically at load, which
    is what the authors' model does at run time for a 96 input; 'pad'
    zero-pads instead."""
    path, ref, _ = official
    model = small(pretrained=True, num_classes=10, img_size=96,
                  pretrained_cfg_overlay=dict(file=path)).eval()
    assert model.backbone.freq_embed[0].shape == (24, 24, 16)
    assert model.pretrained_cfg['input_size'] == (3, 96, 96)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert rel_err(model(x), ref(x)) < 1e-5
    padded = small(pretrained=True, num_classes=10, img_size=96,
                   pretrained_cfg_overlay=dict(file=path),
                   pretrained_fve_mode='pad')
    fve = padded.backbone.freq_embed[0].detach()
    assert torch.equal(fve[:16, :16], ref.freq_embed[0].detach())
    assert fve[16:].abs().sum() == 0 and fve[:, 16:].abs().sum() == 0


def test_pretrained_new_head_in_chans_and_state_dict_source(official):
    path, ref, _ = official
    weights = ref.state_dict()  # what the file holds under `model`
    # another number of classes: backbone loaded, head at its init
    model = small(pretrained=True, num_classes=3,
                  pretrained_cfg_overlay=dict(file=path))
    assert model.get_classifier().out_features == 3
    assert torch.equal(model.backbone.outnorm3.weight, weights[
        'classifier.0.weight'])
    assert torch.equal(model.backbone.layers[2][0].op.to_k[0].weight,
                       weights['layers.2.0.op.to_k.0.weight'])
    # one input channel: the stem conv summed over RGB (timm's rule)
    gray = small(pretrained=True, num_classes=10, in_chans=1,
                 pretrained_cfg_overlay=dict(file=path)).eval()
    conv = weights['patch_embed.conv1.weight']
    assert torch.allclose(gray.backbone.patch_embed.conv1.weight,
                          conv.sum(1, keepdim=True))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert rel_err(gray(x), ref(x.expand(-1, 3, -1, -1))) < 1e-5
    # an in-memory state dict goes through the same filter (timm keeps the
    # head when the cfg's num_classes is the model's)
    direct = small(pretrained=True, num_classes=10,
                   pretrained_cfg_overlay=dict(state_dict=weights,
                                               num_classes=10)).eval()
    with torch.no_grad():
        assert rel_err(direct(x.expand(-1, 3, -1, -1)),
                       ref(x.expand(-1, 3, -1, -1))) < 1e-5


def test_features_only_pretrained(official):
    path, ref, _ = official
    feats = small(pretrained=True, features_only=True,
                  pretrained_cfg_overlay=dict(file=path)).eval()
    full = small(pretrained=True, num_classes=10,
                 pretrained_cfg_overlay=dict(file=path)).eval()
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        for a, b in zip(feats(x), full.forward_intermediates(
                x, intermediates_only=True)):
            assert torch.equal(a, b)


# ---------------------------------------------------------------- timm API
@pytest.mark.parametrize('out_indices,expect', [((0, 1, 2, 3), [0, 1, 2, 3]),
                                                ((1, -1), [1, 3]),
                                                (2, [2, 3]), ((0, ), [0])])
def test_features_only_shapes_at_odd_sizes(out_indices, expect):
    model = small(features_only=True, out_indices=out_indices)
    dims = [16, 32, 64, 128]
    assert model.feature_info.channels() == [dims[i] for i in expect]
    assert model.feature_info.reduction() == [4 * 2**i for i in expect]
    for size in [(97, 150), (33, 40), (224, 31)]:
        outs = model(torch.randn(2, 3, *size))
        assert len(outs) == len(expect)
        for out, i in zip(outs, expect):
            assert out.shape == (2, dims[i],
                                 *[-(-s // 2**(i + 2)) for s in size])
        # every parameter that trains gets a gradient (DDP without
        # find_unused_parameters); the unused later stages are frozen
        sum(o.mean() for o in outs).backward()
        trained = [n for n, p in model.named_parameters() if p.requires_grad]
        assert trained and all(
            model.get_parameter(n).grad is not None for n in trained)
        model.zero_grad()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    if max(expect) < 3:
        assert f'model.backbone.freq_embed.{max(expect) + 1}' in frozen
    assert not any(n.startswith('model.head.fc') for n, _ in
                   model.named_parameters())


def test_forward_intermediates():
    model = small(num_classes=10).eval()
    randomise(model)
    x = torch.randn(2, 3, 61, 47)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
        assert [t.shape[1] for t in inter] == [16, 32, 64, 128]
        last = model.forward_intermediates(x, indices=1, norm=True,
                                           intermediates_only=True)
        assert len(last) == 1 and torch.allclose(last[0], final)
        nhwc = model.forward_intermediates(x, indices=[0, -2],
                                           output_fmt='NHWC',
                                           intermediates_only=True)
        assert torch.equal(nhwc[0], inter[0].permute(0, 2, 3, 1))
        assert torch.equal(nhwc[1], inter[2].permute(0, 2, 3, 1))
        early, part = model.forward_intermediates(x, indices=[1],
                                                  stop_early=True)
        assert torch.equal(part[0], inter[1]) and early.shape[1] == 32


def test_classifier_api():
    model = small(num_classes=10, drop_rate=0.2).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x),
                                    pre_logits=True)
    assert pooled.shape == (2, 128) and model.num_features == 128
    assert model.get_classifier().out_features == 10
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.num_classes == 7
    model.reset_classifier(0)
    with torch.no_grad():
        assert torch.equal(model(x), pooled)
    model.reset_classifier(5, global_pool='catavgmax')
    assert model(x).shape == (2, 5) and model.head_hidden_size == 256
    model.reset_classifier(5, global_pool='max')
    assert model(x).shape == (2, 5)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert torch.equal(model.forward_head(feats, pre_logits=True),
                           feats.amax((2, 3)))
    model.set_grad_checkpointing(True)
    assert model.backbone.with_cp


def test_no_weight_decay_matches_our_recipe():
    """timm's optimizer factory decays exactly the parameters our
    mmpretrain config's optimizer decays (1-D ones excluded, FVEs
    decayed)."""
    from mmengine.optim import build_optim_wrapper
    from timm.optim import create_optimizer_v2
    clf = mmpretrain_classifier(POST, num_classes=10, img_size=64)
    cfg = Config.fromfile(CLS_CONFIG.format('small')).optim_wrapper
    cfg.pop('clip_grad')
    names = {id(p): n for n, p in clf.named_parameters()}
    theirs = {names[id(p)] for g in build_optim_wrapper(clf, cfg)
              .optimizer.param_groups if g['weight_decay'] > 0
              for p in g['params']}
    model = small(num_classes=10)
    names = {id(p): n for n, p in model.named_parameters()}
    opt = create_optimizer_v2(model, 'adamw', lr=1e-3, weight_decay=0.08)
    ours = {names[id(p)] for g in opt.param_groups if g['weight_decay'] > 0
            for p in g['params']}
    assert ours == theirs
    assert 'backbone.freq_embed.0' in ours
    assert {'backbone.outnorm3.weight', 'backbone.layers.0.0.gamma1',
            'backbone.layers.0.0.op.to_k.0.bias'} <= model.no_weight_decay()
    # layer-wise lr decay groups: stem lowest, head highest
    opt = create_optimizer_v2(model, 'adamw', lr=1e-3, layer_decay=0.5)
    scale = {names[id(p)]: g['lr_scale'] for g in opt.param_groups
             for p in g['params']}
    assert scale['backbone.patch_embed.conv1.weight'] < scale[
        'backbone.layers.3.0.op.to_k.0.weight'] < scale['head.fc.weight']
    assert scale['backbone.freq_embed.1'] == scale[
        'backbone.layers.1.0.norm1.weight']


def test_data_config_and_transform():
    from PIL import Image
    from timm.data import create_transform, resolve_model_data_config
    model = timm.create_model('vheat_small', **POST)  # img_size 224
    cfg = resolve_model_data_config(model)
    assert cfg == dict(input_size=(3, 224, 224), interpolation='bicubic',
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                       crop_pct=0.875, crop_mode='center')
    out = create_transform(**cfg)(Image.new('RGB', (300, 260)))
    assert out.shape == (3, 224, 224)
    cfg = resolve_model_data_config(small(num_classes=10, img_size=288))
    assert cfg['input_size'] == (3, 288, 288)
    feats = small(features_only=True)
    assert resolve_model_data_config(feats)['crop_pct'] == 0.875


# ---------------------------------------------------------------- errors
def test_errors(official, tmp_path):
    path, _, _ = official
    with pytest.raises(RuntimeError, match='vheat_tinyy'):
        timm.create_model('vheat_tinyy')
    for bad in [(0, 4), 5, 0, (), (-5, ), 'a']:
        with pytest.raises(ValueError,
                           match=r'out_indices.*expected stage indices in '
                           r'\[-4, 3\]'):
            small(features_only=True, out_indices=bad)
    with pytest.raises(ValueError, match='needs features_only=True'):
        small(out_indices=(0, 1))
    with pytest.raises(ValueError, match="feature_cls='getter'"):
        small(features_only=True, feature_cls='hook')
    with pytest.raises(ValueError, match='pretrained_use_ema'):
        small(pretrained=True,
              pretrained_cfg_overlay=dict(file=path, use_ema=True))
    with pytest.raises(ValueError, match='pretrained_fve_mode'):
        small(pretrained_fve_mode='nearest')
    model = small()
    with pytest.raises(ValueError, match="'NCHW' or 'NHWC'"):
        model.forward_intermediates(torch.randn(1, 3, 32, 32),
                                    output_fmt='NLC')
    with pytest.raises(ValueError, match=r'indices=\(4,\)'):
        model.forward_intermediates(torch.randn(1, 3, 32, 32), indices=(4, ))
    with pytest.raises(ValueError, match='3 input channels'):
        model(torch.randn(1, 4, 32, 32))
    # a file of another arch: which keys, and what the file holds
    with pytest.raises(CheckpointError) as err:
        small(arch=PRE, pretrained=True, num_classes=10,
              pretrained_cfg_overlay=dict(file=path))
    msg = str(err.value)
    assert 'does not fit vheat_tiny' in msg and path in msg
    assert 'the file holds depths=[1, 2, 1, 1], dims=[16, 32, 64, 128]' in msg
    assert 'unexpected keys' in msg and 'shape mismatches' in msg
    # no EMA in the file; no file
    save_official_checkpoint(tmp_path / 'no_ema.pth', model=to_official(
        small(num_classes=10).state_dict()))
    with pytest.raises(CheckpointError, match='no EMA weights'):
        small(pretrained=True, num_classes=10, pretrained_use_ema=True,
              pretrained_cfg_overlay=dict(file=str(tmp_path / 'no_ema.pth')))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        small(pretrained=True,
              pretrained_cfg_overlay=dict(file=str(tmp_path / 'missing.pth')))


def test_core_imports_without_timm():
    """`import mmvheat`, mmvheat.models and the checkpoint reader work with
    timm unimportable; mmvheat.timm then says what to install."""
    code = '\n'.join([
        'import sys',
        "sys.modules['timm'] = None",
        'import mmvheat, mmvheat.models, mmvheat.checkpoint',
        'from mmvheat.models import VHeat',
        "VHeat(dict(depths=[1, 1, 1, 1], dims=8), img_size=32)",
        "assert not any(m == 'timm' or m.startswith('timm.') "
        'for m in sys.modules if sys.modules[m] is not None)',
        'try:',
        '    import mmvheat.timm',
        'except ImportError as err:',
        '    print(err)',
    ])
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ,
                                  PYTHONPATH=REPO_ROOT))
    assert out.returncode == 0, out.stderr
    assert 'mmvheat.timm needs timm' in out.stdout
    assert 'pip install timm==1.0.31' in out.stdout


def test_run_timm_script_with_models_registered(tmp_path):
    """`python -m mmvheat.timm.run train.py ARGS` runs a timm script as
    __main__ with the vheat models known (here a stand-in script that
    builds the model as timm's train.py does)."""
    script = tmp_path / 'train.py'
    script.write_text('\n'.join([
        'import argparse, sys, timm',
        'parser = argparse.ArgumentParser()',
        "parser.add_argument('--model')",
        "parser.add_argument('--num-classes', type=int)",
        'args = parser.parse_args()',
        'model = timm.create_model(args.model, num_classes=args.num_classes,'
        ' drop_rate=0.0, drop_path_rate=None, global_pool=None,'
        ' depths=[1, 1, 1, 1], dims=8)',
        "print(__name__, sys.argv[0], type(model).__name__,"
        ' model.num_classes)',
    ]))
    out = subprocess.run(
        [sys.executable, '-m', 'mmvheat.timm.run', str(script), '--model',
         'vheat_tiny', '--num-classes', '7'], cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['__main__', str(script), 'VHeatTimm', '7']
    from mmvheat.timm.run import main
    with pytest.raises(SystemExit, match="no script 'nowhere.py'"):
        main(['nowhere.py', '--model', 'vheat_tiny'])


def test_device_and_dtype_arguments():
    model = small(num_classes=3, dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model(torch.randn(1, 3, 40, 40, dtype=torch.float64)).dtype == \
        torch.float64
