"""The tools' failures a user can fix: one error line, exit status 1, the
traceback only with --debug; strict loading in tools/test.py, load_from,
--resume and mmpretrain's own test script.

A tiny classifier config on generated data and small files in the
authors' format (helpers.tiny_classifier).
"""
import importlib
import os
import os.path as osp
import subprocess
import sys

import pytest

from helpers.paths import REPO_ROOT
from helpers.tiny_classifier import save_tiny_official, write_tiny_cls_config
from mmvheat.analysis.demo_data import make_ade20k, make_imagenet

WRONG_ARCH = dict(depths=[1, 1, 2, 1], dims=16)


@pytest.fixture(scope='module')
def ws(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tidy')
    make_imagenet(str(tmp / 'imagenet'), 8, 4, size=(64, 64))
    cfg = write_tiny_cls_config(tmp, str(tmp / 'imagenet'))
    save_tiny_official(tmp / 'good.pth')
    save_tiny_official(tmp / 'c10.pth', num_classes=10)
    save_tiny_official(tmp / 'wrong.pth', arch=WRONG_ARCH)
    (tmp / 'text.pth').write_text('not a checkpoint\n')
    return tmp, cfg


def tool(*args, env=None, timeout=300):
    """Run a tool; returns (exit status, stdout, stderr)."""
    full = dict(os.environ, PYTHONPATH=REPO_ROOT)
    full.pop('MMVHEAT_DEBUG', None)
    full.update(env or {})
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=full)
    return proc.returncode, proc.stdout, proc.stderr


def one_error(prog, out, err):
    """The tidy failure: a `prog: error:` message, no traceback."""
    assert f'{prog}: error: ' in err, (out + err)[-3000:]
    assert 'Traceback' not in out + err, (out + err)[-3000:]
    assert '--debug' in err
    return err[err.index(f'{prog}: error: '):]


def test_test_tool_refuses_wrong_architecture(ws):
    """Reproduction 1: another arch's file gives no metric, exit 1, the
    keys named."""
    tmp, cfg = ws
    rc, out, err = tool('tools/test.py', cfg, tmp / 'wrong.pth',
                        '--work-dir', tmp / 'w_wrong')
    assert rc == 1
    msg = one_error('test.py', out, err)
    assert 'wrong.pth does not fit this ImageClassifier' in msg
    assert 'refusing to load it for testing' in msg
    assert 'backbone.layers.2.1.norm1.weight' in msg
    assert 'accuracy/top1' not in out + err
    assert 'size mismatch' not in out + err  # mmengine never got to load


def test_debug_shows_the_traceback(ws):
    tmp, cfg = ws
    rc, out, err = tool('tools/test.py', cfg, tmp / 'wrong.pth',
                        '--work-dir', tmp / 'w_dbg', '--debug')
    assert rc != 0
    assert 'Traceback' in err and 'CheckpointError' in err
    assert 'does not fit' in err


def test_fitting_file_gives_a_metric(ws):
    """The official-layout file of the right arch passes the check."""
    tmp, cfg = ws
    rc, out, err = tool('tools/test.py', cfg, tmp / 'good.pth',
                        '--work-dir', tmp / 'w_good')
    assert rc == 0, (out + err)[-3000:]
    assert 'accuracy/top1' in out + err


@pytest.mark.slow
def test_other_head_finetunes_with_one_line(ws):
    """As load_from, a file with another class count fine-tunes, with one
    line on the head left at its init."""
    tmp, cfg = ws
    rc, out, err = tool('tools/train.py', cfg, '--work-dir', tmp / 'w_ft',
                        '--cfg-options', f'load_from={tmp / "c10.pth"}')
    assert rc == 0, (out + err)[-3000:]
    lines = [line for line in (out + err).splitlines()
             if 'c10.pth: loaded for finetune' in line]
    assert len(lines) == 1, (out + err)[-3000:]
    assert 'the vHeat backbone fits' in lines[0]
    assert 'head.fc.weight, head.fc.bias' in lines[0]


def test_resume_refuses_wrong_architecture(ws):
    tmp, cfg = ws
    rc, out, err = tool('tools/train.py', cfg, '--work-dir', tmp / 'w_res',
                        '--resume', tmp / 'wrong.pth')
    assert rc == 1
    assert 'refusing to load it for resuming' in one_error('train.py', out,
                                                           err)


def test_load_from_refuses_wrong_architecture(ws):
    tmp, cfg = ws
    rc, out, err = tool('tools/train.py', cfg, '--work-dir', tmp / 'w_lf',
                        '--cfg-options', f'load_from={tmp / "wrong.pth"}')
    assert rc == 1
    msg = one_error('train.py', out, err)
    assert 'refusing to load it for fine-tuning' in msg


def test_libraries_own_test_tool_refuses_wrong_architecture(ws):
    """mmpretrain's tools/test.py with our config: the config's
    StrictLoadHook makes the file an error there too (non-zero exit)."""
    tmp, cfg = ws
    own = osp.join(osp.dirname(importlib.import_module('mmpretrain').__file__),
                   '.mim', 'tools', 'test.py')
    rc, out, err = tool(own, cfg, tmp / 'wrong.pth', '--work-dir',
                        tmp / 'w_own')
    assert rc != 0
    assert 'does not fit this ImageClassifier' in err
    assert 'accuracy/top1' not in out + err


@pytest.mark.parametrize('case', ['config', 'checkpoint', 'data_root',
                                  'data_folder', 'ann_file', 'text_file'])
def test_missing_or_bad_inputs_are_one_line(ws, case):
    tmp, cfg = ws
    args = {
        'config': ('tools/test.py', tmp / 'no_cfg.py', tmp / 'good.pth'),
        'checkpoint': ('tools/test.py', cfg, tmp / 'nope.pth'),
        'data_root': ('tools/test.py', cfg, tmp / 'good.pth',
                      '--cfg-options',
                      f'test_dataloader.dataset.data_root={tmp / "none"}'),
        'data_folder': ('tools/train.py', cfg, '--cfg-options',
                        'train_dataloader.dataset.data_prefix=missing'),
        'ann_file': ('tools/test.py', cfg, tmp / 'good.pth', '--cfg-options',
                     'test_dataloader.dataset.ann_file=meta/val.txt'),
        'text_file': ('tools/test.py', cfg, tmp / 'text.pth',
                      '--work-dir', tmp / 'w_text'),
    }[case]
    says = {
        'config': 'config file not found',
        'checkpoint': 'checkpoint not found',
        'data_root': "data_root '" + str(tmp / 'none'),
        'data_folder': 'data folder',
        'ann_file': "annotation file '" + str(tmp / 'imagenet' / 'meta'),
        'text_file': "not in torch's zip format (it starts with text",
    }[case]
    rc, out, err = tool(*args)
    assert rc == 1
    msg = one_error(osp.basename(args[0]), out, err)
    assert says in msg
    assert 'MMVHEAT_UNSAFE_LOAD' not in msg


def test_corrupt_cached_download_through_test_tool(ws, tmp_path):
    """Reproduction 2, cache: garbage cached for the URL, reached through
    `tools/test.py CONFIG URL`: named with its URL and the rm command."""
    tmp, cfg = ws
    url = 'https://example.invalid/vheat/vHeat_tiny.pth'
    cached = tmp_path / 'vHeat_tiny.pth'
    cached.write_bytes(b'PK\x03\x04 not really a zip')
    rc, out, err = tool('tools/test.py', cfg, url, '--work-dir',
                        tmp / 'w_cache',
                        env=dict(MMVHEAT_CACHE_DIR=str(tmp_path),
                                 MMVHEAT_OFFLINE='1'))
    assert rc == 1
    msg = one_error('test.py', out, err)
    assert f'the cached download of {url}' in msg
    assert f'Remove it with `rm "{cached}"`' in msg
    assert 'MMVHEAT_UNSAFE_LOAD' not in msg


def test_offline_pretrained_fails_early_and_tidily(ws, tmp_path):
    """Reproduction 4: the real UperNet config offline. One message (URL,
    hand download, --no-pretrained) before the runner is built, exit 1,
    nothing left in the cache folder."""
    tmp, _ = ws
    ade = tmp / 'ade'
    make_ade20k(str(ade), 2, 2, size=(64, 64))
    cache = tmp_path / 'cache'
    rc, out, err = tool(
        'tools/train.py',
        'configs/segmentation/vheat-tiny_upernet_8xb2-160k_ade20k-512x512.py',
        '--work-dir', tmp / 'w_off', '--cfg-options',
        f'train_dataloader.dataset.data_root={ade}',
        f'val_dataloader.dataset.data_root={ade}',
        env=dict(MMVHEAT_OFFLINE='1', MMVHEAT_CACHE_DIR=str(cache)))
    assert rc == 1
    msg = one_error('train.py', out, err)
    assert 'MMVHEAT_OFFLINE is set' in msg and 'vHeat_tiny.pth' in msg
    assert 'Download it by hand' in msg
    assert '--no-pretrained to train from scratch' in msg
    assert 'Runner' not in out  # failed before building the runner
    assert not cache.exists() or os.listdir(cache) == []
    # the real torch hub cache is not touched either
    import torch.hub
    hub = osp.join(torch.hub.get_dir(), 'checkpoints', 'vHeat_tiny.pth.lock')
    assert not osp.exists(hub)


def test_converter_bad_file_is_one_line(ws):
    tmp, _ = ws
    rc, out, err = tool('tools/model_converters/vheat_to_mmvheat.py',
                        tmp / 'text.pth', tmp / 'out.pth')
    assert rc == 1
    assert "not in torch's zip format" in one_error('vheat_to_mmvheat.py',
                                                    out, err)


def test_run_tool_reports_expected_errors_only(capsys, monkeypatch):
    """run_tool in-process: expected errors -> one line and status 1;
    --debug or MMVHEAT_DEBUG=1 -> the exception; a bug -> the exception."""
    from mmvheat.checkpoint import CheckpointError
    from mmvheat.download import DownloadError
    from mmvheat.utils import ToolError, run_tool
    monkeypatch.delenv('MMVHEAT_DEBUG', raising=False)

    def failing(error):
        def main(argv):
            raise error
        return main

    for error in (CheckpointError('bad file'), DownloadError('offline'),
                  FileNotFoundError('config file not found: x.py'),
                  ToolError('--tta needs tta_model')):
        assert run_tool(failing(error), 'tool.py', []) == 1
        err = capsys.readouterr().err
        assert err.startswith(f'tool.py: error: {error}\n')
        assert 'Traceback' not in err
        with pytest.raises(type(error)):
            run_tool(failing(error), 'tool.py', ['--debug'])
    monkeypatch.setenv('MMVHEAT_DEBUG', '1')
    with pytest.raises(CheckpointError):
        run_tool(failing(CheckpointError('x')), 'tool.py', [])
    monkeypatch.delenv('MMVHEAT_DEBUG')
    with pytest.raises(ZeroDivisionError):
        run_tool(failing(ZeroDivisionError()), 'tool.py', [])
    assert run_tool(lambda argv: None, 'tool.py', []) == 0


def test_tools_add_the_hook_to_a_config_without_it(ws):
    """A config whose custom_hooks lack StrictLoadHook gets it from our
    tools (load_config); one that lists it keeps one."""
    from mmvheat.utils import ensure_strict_loading, load_config
    tmp, cfg = ws
    bare = tmp / 'no_hooks.py'
    bare.write_text(f'_base_ = [{cfg!r}]\ncustom_hooks = []\n')
    loaded = load_config(str(bare))
    assert [h['type'] for h in loaded.custom_hooks] == \
        ['mmvheat.StrictLoadHook']
    assert not ensure_strict_loading(loaded)
    full = load_config(cfg)
    assert [h['type'] for h in full.custom_hooks].count(
        'mmvheat.StrictLoadHook') == 1


# Every tool, given bad input: one line saying what was wrong and what was
# expected, a non-zero exit, no traceback. {cfg} is the tiny classifier
# config, {det} the demo Mask R-CNN config, {text} a text file where a
# checkpoint (or an ONNX file) belongs, {img} an image, {tmp} the scratch
# folder, {data} the tiny ImageNet folder, {good} a fitting checkpoint.
DET_DEMO = 'configs/demo/mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py'
MISSING_CONFIG = {
    'tools/train.py': [],
    'tools/analysis_tools/get_flops.py': [],
    'tools/analysis_tools/visualize_heat.py': ['--img', '{img}'],
    'tools/analysis_tools/draw_predictions.py': None,  # task first
    'tools/deployment/benchmark_detector.py': [],
    'tools/deployment/int8_report.py': ['{good}'],
    'tools/deployment/pytorch2aoti.py': ['--out', '{tmp}/x.pt2'],
    'tools/deployment/pytorch2onnx.py': ['--out', '{tmp}/x.onnx'],
    'tools/deployment/test_onnx.py': ['{tmp}/x.onnx'],
}
UNREADABLE_CHECKPOINT = {
    'tools/analysis_tools/visualize_heat.py': [
        '{cfg}', '{text}', '--img', '{img}', '--out-dir', '{tmp}/vis',
        '--figures', 'conductivity'],
    'tools/analysis_tools/draw_predictions.py': [
        'cls', '{cfg}', '{text}', '--data-root', '{data}', '--out-dir',
        '{tmp}/draw'],
    'tools/deployment/benchmark_detector.py': [DET_DEMO, '{text}',
                                               '--out-dir', '{tmp}/det'],
    'tools/deployment/int8_report.py': ['{cfg}', '{text}', '--out-dir',
                                        '{tmp}/int8'],
    'tools/deployment/pytorch2aoti.py': ['{cfg}', '{text}', '--out',
                                         '{tmp}/x.pt2'],
    'tools/deployment/pytorch2onnx.py': ['{cfg}', '{text}', '--out',
                                         '{tmp}/x.onnx'],
    # an ONNX file that is not one
    'tools/deployment/test_onnx.py': ['{cfg}', '{text}'],
}
# (tool, argv, exit status, what the error line says)
BAD_OPTIONS = [
    ('tools/analysis_tools/get_flops.py', ['{cfg}', '--shape', '0', '0'], 2,
     'argument --shape: expected a positive integer, got 0'),
    ('tools/analysis_tools/visualize_heat.py',
     ['{cfg}', '--img', '{img}', '--shape', '1', '2', '3'], 2,
     '--shape takes one size (the shorter side'),
    ('tools/deployment/benchmark_detector.py', [DET_DEMO, '--shape', '800'],
     2, 'argument --shape: expected 2 arguments'),
    ('tools/deployment/pytorch2onnx.py',
     ['{cfg}', '--out', '{tmp}/x.onnx', '--shape', '-3', '64'], 2,
     'argument --shape: expected a positive integer, got -3'),
    ('tools/deployment/pytorch2aoti.py',
     ['{cfg}', '--out', '{tmp}/x.pt2', '--shape', '16', '16'], 1,
     '(16, 16) is too small'),
    ('tools/analysis_tools/benchmark_dct.py', ['--sizes', '0x4'], 2,
     "a size is N or HxW (positive ints), got '0x4'"),
    ('tools/analysis_tools/get_flops.py', ['--models', 'resnet-50'], 2,
     "unknown model 'resnet-50'; expected vheat-{t,s,b}[:IMPL]"),
    ('tools/analysis_tools/benchmark_stream.py', ['--models', 'swin-t'], 2,
     "this tool runs vheat-{t,s,b} models (not :reference), got 'swin-t'"),
]


@pytest.fixture(scope='module')
def paths(ws):
    tmp, cfg = ws
    img = tmp / 'image.png'
    if not img.exists():
        import cv2
        import numpy as np
        cv2.imwrite(str(img), np.full((40, 56, 3), 128, np.uint8))
    return dict(cfg=cfg, tmp=tmp, img=img, text=tmp / 'text.pth',
                good=tmp / 'good.pth', data=tmp / 'imagenet')


def _fill(args, paths):
    return [a.format(**{k: str(v) for k, v in paths.items()})
            for a in args]


def error_line(prog, out, err):
    """The one line saying what went wrong (argparse's usage line may come
    before it), and no traceback."""
    assert 'Traceback' not in out + err, (out + err)[-3000:]
    lines = [line for line in err.splitlines()
             if line.startswith(f'{prog}: error: ')]
    assert len(lines) == 1, (out + err)[-3000:]
    return lines[0]


@pytest.mark.parametrize('path', list(MISSING_CONFIG))
def test_missing_config_is_one_line(paths, path):
    missing = str(paths['tmp'] / 'no_such_config.py')
    rest = MISSING_CONFIG[path]
    if rest is None:  # draw_predictions: TASK CONFIG CHECKPOINT
        args = ['cls', missing, '{good}', '--data-root', '{data}',
                '--out-dir', '{tmp}/draw']
    else:
        args = [missing] + rest
    rc, out, err = tool(path, *_fill(args, paths))
    assert rc == 1
    line = error_line(osp.basename(path), out, err)
    assert line.endswith(f'config file not found: {missing}'), line


@pytest.mark.parametrize('path', list(UNREADABLE_CHECKPOINT))
def test_unreadable_checkpoint_is_one_line(paths, path):
    """A text file where the weights belong: named, with what was
    expected of it (visualize_heat.py printed a traceback before)."""
    rc, out, err = tool(path, *_fill(UNREADABLE_CHECKPOINT[path], paths))
    assert rc == 1
    line = error_line(osp.basename(path), out, err)
    text = str(paths['text'])
    if 'test_onnx' in path:
        assert f'could not read {text} as an ONNX file' in line
    else:
        assert f'could not read {text} as a torch checkpoint' in line
        assert "not in torch's zip format" in line


@pytest.mark.parametrize('path,args,status,says', BAD_OPTIONS)
def test_bad_option_is_one_line(paths, path, args, status, says):
    rc, out, err = tool(path, *_fill(args, paths))
    assert rc == status
    assert says in error_line(osp.basename(path), out, err)


def test_run_tool_reports_the_errors_a_tool_names(capsys):
    """The deployment tools name DeployError to run_tool: one line, exit
    1; an error type nobody named keeps its traceback."""
    from mmvheat.deployment import DeployError
    from mmvheat.utils.runner import run_tool

    def main(argv):
        raise DeployError('no such size')

    assert run_tool(main, 'x.py', [], errors=(DeployError, )) == 1
    assert 'x.py: error: no such size' in capsys.readouterr().err
    with pytest.raises(DeployError):
        run_tool(main, 'x.py', [])


def test_draw_predictions_refuses_wrong_architecture(ws):
    """The libraries' inferencers load leniently; the drawing tool loads
    again through mmvheat's checked loader, so another arch's file is one
    error line instead of panels from random weights."""
    tmp, cfg = ws
    rc, out, err = tool('tools/analysis_tools/draw_predictions.py', 'cls',
                        cfg, tmp / 'wrong.pth', '--data-root',
                        tmp / 'imagenet', '--out-dir', tmp / 'draw_wrong')
    assert rc == 1
    msg = one_error('draw_predictions.py', out, err)
    assert 'wrong.pth' in msg and 'does not fit' in msg
