"""The strict-loading rule (mmvheat.checkpoint.check_checkpoint_fits) and
the one reader's messages for bad files on every path that opens one.

Small models (the reduced SMALL arch) and small files; the CLI cases are in
tests/test_tools/test_tidy_errors.py.
"""
import logging
import os
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from helpers.paths import REPO_ROOT
from helpers.reference import SMALL
from mmvheat.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    check_checkpoint_fits,
    load_backbone_weights,
    read_checkpoint,
)
from mmvheat.convert import convert_checkpoint
from mmvheat.models import VHeat


class Classifier(nn.Module):
    """A vHeat backbone and a linear head (mmpretrain's key layout)."""

    def __init__(self, arch=SMALL, num_classes=5, img_size=64):
        super().__init__()
        self.backbone = VHeat(arch, img_size=img_size)
        self.head = nn.Module()
        self.head.fc = nn.Linear(self.backbone.dims[-1], num_classes)


def checkpoint_of(model, **extra) -> dict:
    state = OrderedDict(model.state_dict())
    state.update(extra)
    return dict(state_dict=state, meta=dict(epoch=1))


class LogLines:
    """Messages logged through mmengine's current logger."""

    def __init__(self):
        from mmengine.logging import MMLogger
        self.logger = MMLogger.get_current_instance()
        self.lines = []
        self.handler = logging.Handler()
        self.handler.emit = lambda r: self.lines.append(r.getMessage())

    def __enter__(self):
        self.logger.addHandler(self.handler)
        return self.lines

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)


@pytest.mark.parametrize('purpose', ['test', 'resume', 'finetune'])
def test_a_fitting_checkpoint_passes_unchanged(purpose):
    model = Classifier()
    ckpt = checkpoint_of(Classifier())
    keys = list(ckpt['state_dict'])
    report = check_checkpoint_fits(model, ckpt, purpose, 'same.pth')
    assert report['backbones'] == ['backbone.']
    assert report['ignored'] == [] and report['adapted'] == []
    assert list(ckpt['state_dict']) == keys


@pytest.mark.parametrize('purpose', ['test', 'resume', 'finetune'])
def test_wrong_architecture_is_refused_naming_keys(purpose):
    """Reproduction 1: another arch's file is an error, for every purpose,
    before anything is loaded."""
    model = Classifier()
    other = Classifier(dict(depths=[1, 2, 2, 1], dims=24))
    with pytest.raises(CheckpointError) as info:
        check_checkpoint_fits(model, checkpoint_of(other), purpose, 'S.pth')
    msg = str(info.value)
    assert 'S.pth does not fit this Classifier' in msg
    assert 'depths=[1, 2, 1, 1]' in msg  # the model's arch
    assert 'the file holds depths=[1, 2, 2, 1], dims=[24, 48, 96, 192]' \
        in msg
    assert 'unexpected keys' in msg and 'backbone.layers.2.1.' in msg
    assert 'shape mismatches' in msg
    assert 'backbone.patch_embed.conv1.weight: checkpoint (12, 3, 3, 3) ' \
        'vs model (8, 3, 3, 3)' in msg


def test_authors_layout_is_mapped_before_checking():
    """The authors' key layout (stem norms in a Sequential, 1x1-conv MLP,
    downsample inside the stage) fits after mapping."""
    model = Classifier(SMALL, num_classes=10)
    from helpers.reference import reference_for
    ref = reference_for(model.backbone, num_classes=10)
    sd = OrderedDict()
    for k, v in ref.state_dict().items():
        k = k.replace('classifier.0.', 'outnorm3.')
        sd[('head.fc.' + k[len('classifier.3.'):]) if k.startswith(
            'classifier.3.') else 'backbone.' + k] = v
    assert 'backbone.patch_embed.norm1.1.weight' in sd
    ckpt = dict(state_dict=sd)
    check_checkpoint_fits(model, ckpt, 'test', 'authors.pth')
    model.load_state_dict(ckpt['state_dict'], strict=True)


def test_test_refuses_another_class_count_finetune_allows_it():
    model = Classifier(num_classes=5)
    ckpt = checkpoint_of(Classifier(num_classes=10))
    with pytest.raises(CheckpointError, match=r'head\.fc\.weight: '
                       r'checkpoint \(10, 128\) vs model \(5, 128\)'):
        check_checkpoint_fits(model, ckpt, 'test', 'c10.pth')
    with LogLines() as lines:
        report = check_checkpoint_fits(model, ckpt, 'finetune', 'c10.pth')
    assert report['ignored'] == ['head.fc.weight', 'head.fc.bias']
    assert 'head.fc.weight' not in ckpt['state_dict']  # dropped: not loaded
    said = [line for line in lines if 'c10.pth' in line]
    assert len(said) == 1 and 'the vHeat backbone fits' in said[0]
    assert '2 keys' in said[0] and 'head.fc.weight' in said[0]
    # what mmengine then loads leaves only the head at its init
    missing = model.load_state_dict(ckpt['state_dict'], strict=False)
    assert sorted(missing.missing_keys) == ['head.fc.bias', 'head.fc.weight']


def test_extra_keys_ignored_for_test_refused_for_resume():
    model = Classifier()
    extra = dict({'aux.weight': torch.zeros(2)})
    with LogLines() as lines:
        report = check_checkpoint_fits(model, checkpoint_of(Classifier(),
                                                            **extra),
                                       'test', 'extra.pth')
    assert report['ignored'] == ['aux.weight']
    assert any('aux.weight' in line for line in lines)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): "
                       r"\['aux.weight'\]"):
        check_checkpoint_fits(model, checkpoint_of(Classifier(), **extra),
                              'resume', 'extra.pth')
    # inside the backbone, extra keys are an error for a test too
    bad = checkpoint_of(Classifier(), **{'backbone.extra.weight':
                                         torch.zeros(1)})
    with pytest.raises(CheckpointError, match='backbone.extra.weight'):
        check_checkpoint_fits(model, bad, 'test', 'extra.pth')


def test_missing_backbone_key_and_fve_grid():
    model = Classifier(img_size=128)
    ckpt = checkpoint_of(Classifier(img_size=64))
    # test: a checkpoint of another img_size: named, with the hint
    with pytest.raises(CheckpointError, match='backbone.img_size'):
        check_checkpoint_fits(model, ckpt, 'test', 'g64.pth')
    # fine-tuning: FVEs zero-padded to the model's grid, logged
    ckpt = checkpoint_of(Classifier(img_size=64))
    report = check_checkpoint_fits(model, ckpt, 'finetune', 'g64.pth')
    assert report['adapted'][0] == \
        'backbone.freq_embed.0: (16, 16) -> (32, 32) (pad)'
    model.load_state_dict(ckpt['state_dict'], strict=True)
    # a backbone key missing: an error even when fine-tuning
    ckpt = checkpoint_of(Classifier())
    del ckpt['state_dict']['backbone.layers.1.0.op.linear.weight']
    with pytest.raises(CheckpointError, match=r'missing keys \(1\)'):
        check_checkpoint_fits(Classifier(), ckpt, 'finetune', 'm.pth')


def test_module_prefix_and_bare_state_dict():
    model = Classifier()
    sd = {f'module.{k}': v for k, v in Classifier().state_dict().items()}
    check_checkpoint_fits(model, sd, 'test', 'ddp.pth')
    assert 'backbone.freq_embed.0' in sd
    with pytest.raises(ValueError, match='purpose'):
        check_checkpoint_fits(model, sd, 'train', 'x.pth')


# ----------------------------------------------------------------------
# one reader: the same message on every path
def bad_files(folder) -> dict:
    """name -> (path, what the message must say)."""
    ok = os.path.join(folder, 'ok.pth')
    torch.save({'state_dict': {'a': torch.zeros(3)}}, ok)
    data = open(ok, 'rb').read()
    files = {}

    def put(name, body):
        path = os.path.join(folder, name)
        with open(path, 'wb') as f:
            f.write(body)
        return path

    files['text'] = (put('text.pth', b'version https://git-lfs\n'),
                     "not in torch's zip format (it starts with text")
    files['truncated'] = (put('trunc.pth', data[:len(data) // 2]),
                          "not in torch's zip format")
    import zipfile
    src = zipfile.ZipFile(ok)
    corrupt = os.path.join(folder, 'corrupt.pth')
    with zipfile.ZipFile(corrupt, 'w') as out:
        for name in src.namelist():
            body = src.read(name)
            out.writestr(name, body[:len(body) // 2]
                         if name.endswith('data.pkl') else body)
    files['corrupt'] = (corrupt, 'its pickle is malformed')
    files['missing'] = (os.path.join(folder, 'nope.pth'),
                        'checkpoint file not found')
    return files


class _Foreign:
    pass


def unsafe_file(folder) -> str:
    path = os.path.join(folder, 'unsafe.pth')
    torch.save({'state_dict': {}, 'extra': _Foreign()}, path)
    return path


def open_with(path_kind: str, path: str) -> None:
    """Open ``path`` the way one entry point does."""
    if path_kind == 'read_checkpoint':
        read_checkpoint(path)
    elif path_kind == 'mmengine':  # tools/test.py, load_from, --resume
        from mmengine.runner.checkpoint import CheckpointLoader

        import mmvheat.engine  # noqa: F401
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    elif path_kind == 'init_cfg':
        load_backbone_weights(VHeat(SMALL, img_size=64), path)
    elif path_kind == 'converter':
        convert_checkpoint(path, path + '.out.pth')
    elif path_kind == 'exporter':
        from mmvheat.deployment import load_model_weights
        load_model_weights(Classifier(), path)
    elif path_kind == 'timm':
        from mmvheat.timm import VHeatTimm
        VHeatTimm(depths=[1, 2, 1, 1], dims=16).load_pretrained(path)


ENTRY_POINTS = ['read_checkpoint', 'mmengine', 'init_cfg', 'converter',
                'exporter', 'timm']


@pytest.mark.parametrize('entry', ENTRY_POINTS)
def test_bad_files_same_message_everywhere(tmp_path, entry):
    """Reproduction 2: text, truncated, corrupt-pickle and missing files;
    one message per kind whichever path opens them, never advising
    MMVHEAT_UNSAFE_LOAD."""
    for kind, (path, says) in bad_files(str(tmp_path)).items():
        error = FileNotFoundError if kind == 'missing' else CheckpointError
        with pytest.raises(error) as info:
            open_with(entry, path)
        assert says in str(info.value), (kind, str(info.value))
        assert path in str(info.value)
        assert 'MMVHEAT_UNSAFE_LOAD' not in str(info.value), kind
        assert not isinstance(info.value, UnsafeCheckpointError)


@pytest.mark.parametrize('entry', ['read_checkpoint', 'mmengine', 'init_cfg'])
def test_only_a_wellformed_unsafe_file_mentions_unsafe_load(tmp_path, entry):
    path = unsafe_file(str(tmp_path))
    with pytest.raises(UnsafeCheckpointError) as info:
        open_with(entry, path)
    msg = str(info.value)
    assert 'well-formed checkpoint' in msg and '_Foreign' in msg
    assert 'MMVHEAT_UNSAFE_LOAD=1' in msg


def test_corrupt_cached_download_names_url_and_rm(tmp_path, monkeypatch):
    """Reproduction 2, cache: garbage under the URL's cache name (offline,
    so nothing is fetched) is named with its URL and the rm command; the
    file is left for the user to remove."""
    monkeypatch.setenv('MMVHEAT_CACHE_DIR', str(tmp_path))
    url = 'https://example.invalid/releases/vHeat_tiny.pth'
    cached = tmp_path / 'vHeat_tiny.pth'
    for body in (b'<html>502 Bad Gateway</html>', b'PK\x03\x04garbage'):
        cached.write_bytes(body)
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(url)
        msg = str(info.value)
        assert f'(the cached download of {url})' in msg
        assert f'Remove it with `rm "{cached}"`' in msg
        assert 'MMVHEAT_UNSAFE_LOAD' not in msg
        assert cached.exists()


def test_mask_rcnn_t_config_refuses_the_vheat_s_detection_file():
    """The realistic case of reproduction 1: the Mask R-CNN vHeat-T config
    tested with a vHeat-S detection checkpoint (full-size models)."""
    import importlib

    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    models = {}
    for arch in ('t', 's'):
        cfg = Config.fromfile(os.path.join(
            REPO_ROOT, f'configs/detection/mask-rcnn_vheat-{arch}_fpn_1x_'
            'coco.py'))
        cfg.model.backbone.init_cfg = None
        registry = importlib.import_module(f'{cfg.default_scope}.registry')
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            models[arch] = registry.MODELS.build(cfg.model)
    ckpt = dict(state_dict=models['s'].state_dict(), meta=dict(epoch=12))
    with pytest.raises(CheckpointError) as info:
        check_checkpoint_fits(models['t'], ckpt, 'test', 'vheat_small_det.pth')
    msg = str(info.value)
    assert msg.startswith('vheat_small_det.pth does not fit this MaskRCNN '
                          '(backbone: vHeat depths=[2, 2, 6, 2]')
    assert 'the file holds depths=[2, 2, 18, 2], dims=[96, 192, 384, ' \
        '768]' in msg
    assert 'unexpected keys (264)' in msg and 'gamma1' in msg
    # the same file fits its own config
    check_checkpoint_fits(models['s'], ckpt, 'test', 'vheat_small_det.pth')
