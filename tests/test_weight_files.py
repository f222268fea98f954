"""The weight files users have, through every loading path.

Files: a ``torch.compile``d model's (``_orig_mod.``), DDP's (``module.``),
both nested, a bare state dict, ``.safetensors``, mmengine's with its
``EMAHook`` average, timm ``train.py``'s (an ``argparse.Namespace`` inside,
``state_dict_ema``), fp16 and bf16 weights. Paths: timm's ``pretrained``,
``init_cfg`` Pretrained, mmengine's loader with the strict-load rule (what
the runner runs for ``load_from`` and test), the deployment loader, the
converter (``.pth`` and ``.safetensors`` out), and ``tools/test.py``. Each
load must give the source model's outputs.
"""
import argparse
import os
import subprocess
import sys

import pytest
import timm
import torch
from mmengine.config import Config

import mmvheat.timm  # noqa: F401  (registers vheat_tiny with timm)
from helpers.numerics import randomise, rel_err
from helpers.paths import REPO_ROOT
from helpers.tiny_classifier import (
    TINY_CLS_ARCH,
    TINY_CLS_CLASSES,
    write_tiny_cls_config,
)
from mmvheat.checkpoint import (
    CheckpointError,
    check_checkpoint_fits,
    read_checkpoint,
)
from mmvheat.convert import convert_checkpoint
from mmvheat.models import VHeat

SIZE = 64


def timm_model(**kwargs) -> torch.nn.Module:
    """The tiny classifier as timm's vheat_tiny (mmpretrain's keys)."""
    return timm.create_model('vheat_tiny', **TINY_CLS_ARCH, img_size=SIZE,
                             num_classes=TINY_CLS_CLASSES, **kwargs).eval()


@pytest.fixture(scope='module')
def source():
    """(raw model, EMA model, input): two randomised tiny classifiers."""
    raw, ema = timm_model(), timm_model()
    randomise(raw)
    with torch.no_grad():
        for p in ema.parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (p if p.dim() == 1 else 0))
    return raw, ema, torch.randn(2, 3, SIZE, SIZE)


def _prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


@pytest.fixture(scope='module')
def files(source, tmp_path_factory):
    """name -> (path, which weights it holds without and with use_ema)."""
    from safetensors.torch import save_file

    raw, ema, _ = source
    tmp = tmp_path_factory.mktemp('weight_files')
    sd, ema_sd = raw.state_dict(), ema.state_dict()
    contents = {
        'bare': (sd, 'raw', None),
        'ddp': (_prefixed(sd, 'module.'), 'raw', None),
        'compiled': (_prefixed(sd, '_orig_mod.'), 'raw', None),
        'compiled_ddp_mmengine': (dict(
            state_dict=_prefixed(sd, 'module._orig_mod.'),
            meta=dict(epoch=1)), 'raw', None),
        # mmengine's EMAHook saves the average under state_dict and the
        # model's own weights under ema_state_dict (swapped)
        'mmengine_ema': (dict(
            state_dict=ema_sd, meta=dict(epoch=3),
            ema_state_dict=dict(_prefixed(sd, 'module.'),
                                steps=torch.tensor(7))), 'ema', 'ema'),
        'timm_train': (dict(
            epoch=2, arch='vheat_tiny', state_dict=sd,
            state_dict_ema=ema_sd, optimizer=dict(state={}, param_groups=[]),
            version=2, metric=0.5,
            args=argparse.Namespace(model='vheat_tiny', lr=0.1)),
            'raw', 'ema'),
        'fp16': ({k: v.half() for k, v in sd.items()}, 'fp16', None),
        'bf16': ({k: v.bfloat16() for k, v in sd.items()}, 'bf16', None),
    }
    out = {}
    for name, (obj, plain, with_ema) in contents.items():
        path = str(tmp / f'{name}.pth')
        torch.save(obj, path)
        out[name] = (path, plain, with_ema)
    path = str(tmp / 'model.safetensors')
    save_file({k: v.contiguous() for k, v in sd.items()}, path)
    out['safetensors'] = (path, 'raw', None)
    return out


def expected(source, which: str) -> torch.nn.Module:
    """The source model holding the weights a file was written from."""
    raw, ema, _ = source
    if which == 'ema':
        return ema
    if which == 'raw':
        return raw
    dtype = dict(fp16=torch.float16, bf16=torch.bfloat16)[which]
    rounded = timm_model()
    rounded.load_state_dict({k: v.to(dtype).float()
                             for k, v in raw.state_dict().items()})
    return rounded


def cases():
    names = ['bare', 'ddp', 'compiled', 'compiled_ddp_mmengine', 'safetensors',
             'mmengine_ema', 'timm_train', 'fp16', 'bf16']
    return [(n, False) for n in names] + [('mmengine_ema', True),
                                          ('timm_train', True)]


def logits(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize('name,use_ema', cases())
def test_timm_pretrained(files, source, name, use_ema):
    path, plain, with_ema = files[name]
    model = timm_model(pretrained=True, pretrained_use_ema=use_ema,
                       pretrained_cfg_overlay=dict(file=path))
    ref = expected(source, with_ema if use_ema else plain)
    x = source[2]
    assert rel_err(logits(model, x), logits(ref, x)) < 1e-6


@pytest.mark.parametrize('name,use_ema', cases())
def test_init_cfg_pretrained(files, source, name, use_ema):
    path, plain, with_ema = files[name]
    backbone = VHeat(TINY_CLS_ARCH, img_size=SIZE, out_indices=(3, ),
                     init_cfg=dict(type='Pretrained', checkpoint=path,
                                   use_ema=use_ema))
    backbone.init_weights()
    ref = expected(source, with_ema if use_ema else plain).backbone
    x = source[2]
    with torch.no_grad():
        assert rel_err(backbone.eval()(x)[0], ref(x)[0]) < 1e-6


@pytest.mark.parametrize('name', [n for n, ema in cases() if not ema])
def test_runner_loader_with_strict_rule(files, source, name):
    """What mmengine's runner does for load_from and test: its checkpoint
    loader (mmvheat's reader behind it), the StrictLoadHook's check, then
    its own copy into the model."""
    from mmengine.runner.checkpoint import (
        CheckpointLoader,
        _load_checkpoint_to_model,
    )

    import mmvheat.engine  # noqa: F401  (installs the loader fix)
    path, plain, _ = files[name]
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert 'state_dict' in ckpt  # what mmpretrain's EMAHook reads
    model = timm_model()
    check_checkpoint_fits(model, ckpt, 'test', source=path)
    _load_checkpoint_to_model(model, ckpt, strict=True)
    x = source[2]
    assert rel_err(logits(model, x), logits(expected(source, plain), x)) \
        < 1e-6


@pytest.mark.parametrize('name', ['compiled', 'ddp', 'safetensors',
                                  'timm_train', 'bf16'])
def test_deployment_loader(files, source, name, tmp_path):
    from mmvheat.deployment import build_deploy_model
    path, plain, _ = files[name]
    cfg = Config.fromfile(write_tiny_cls_config(tmp_path, str(tmp_path)))
    model = build_deploy_model(cfg, path)
    x = source[2]
    with torch.no_grad():
        out = model(x, mode='tensor')
    assert rel_err(out, logits(expected(source, plain), x)) < 1e-6


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
@pytest.mark.parametrize('name,use_ema', [('compiled', False),
                                          ('timm_train', True),
                                          ('safetensors', False)])
def test_converter(files, source, name, use_ema, suffix, tmp_path):
    path, plain, with_ema = files[name]
    out, _ = convert_checkpoint(path, str(tmp_path / f'out{suffix}'),
                                use_ema=use_ema)
    assert out.endswith(suffix)
    state = read_checkpoint(out)['state_dict']
    assert all(k.startswith(('backbone.', 'head.fc.')) for k in state)
    model = timm_model()
    model.load_state_dict(state)
    ref = expected(source, with_ema if use_ema else plain)
    x = source[2]
    assert rel_err(logits(model, x), logits(ref, x)) < 1e-6


def test_no_ema_in_the_file_is_one_clear_error(files):
    path = files['bare'][0]
    with pytest.raises(CheckpointError, match='holds no EMA weights'):
        timm_model(pretrained=True, pretrained_use_ema=True,
                   pretrained_cfg_overlay=dict(file=path))


def test_converter_refuses_what_is_not_vheat(tmp_path):
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    path = tmp_path / 'mlp.pth'
    torch.save(mlp.state_dict(), path)
    proc = subprocess.run(
        [sys.executable, 'tools/model_converters/vheat_to_mmvheat.py',
         str(path), str(tmp_path / 'out.pth')], cwd=REPO_ROOT,
        capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert 'does not hold vHeat weights' in proc.stderr
    assert '0.weight' in proc.stderr  # names what it found
    assert not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('name', [
    'bare',
    pytest.param('compiled', marks=pytest.mark.slow),
    pytest.param('safetensors', marks=pytest.mark.slow),
    pytest.param('timm_train', marks=pytest.mark.slow)
])
def test_test_tool_with_classification_config(files, name, tmp_path):
    """tools/test.py with the classification config (mmpretrain's EMAHook
    in it) takes these files and runs to a metric (the weights they load
    are compared in test_runner_loader_with_strict_rule)."""
    from mmvheat.analysis.demo_data import make_imagenet
    make_imagenet(str(tmp_path / 'data'), 8, TINY_CLS_CLASSES,
                  size=(SIZE, SIZE))
    cfg = write_tiny_cls_config(tmp_path, str(tmp_path / 'data'))
    path = files[name][0]
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', cfg, path, '--work-dir',
         str(tmp_path / 'work')], cwd=REPO_ROOT, capture_output=True,
        text=True, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'accuracy/top1' in proc.stdout + proc.stderr


def test_analysis_swin_loader(tmp_path):
    """The ERF comparison's Swin loads an mmpretrain classifier file through
    the same function (its output norms may be absent) and refuses a file
    with nothing of it."""
    from mmvheat.analysis.visualization.features import build_swin
    src = build_swin('tiny', None, (3, ))
    randomise(src)
    torch.save(dict(state_dict=_prefixed(src.state_dict(), 'backbone.'),
                    meta={}), tmp_path / 'swin.pth')
    swin = build_swin('tiny', str(tmp_path / 'swin.pth'), (3, ))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(swin(x)[0], src(x)[0]) < 1e-6
    torch.save({'other.weight': torch.zeros(2)}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='holds no weights of this Swin'):
        build_swin('tiny', str(tmp_path / 'other.pth'), (3, ))
