"""Checkpoints by URL, against a real HTTP server on 127.0.0.1.

Small files in the authors' formats are served by ``checkpoint_server``
(``conftest.py``), which counts requests; mmvheat's cache is a temporary
folder. Nothing here touches the network.
"""
import os
import os.path as osp
import subprocess
import sys
import threading

import pytest
import torch

from helpers.checkpoints import save_official_checkpoint
from helpers.paths import REPO_ROOT
from mmvheat.analysis.reference_vheat import ReferenceVHeat
from mmvheat.checkpoint import (
    CheckpointError,
    read_checkpoint,
)
from mmvheat.convert import convert_checkpoint
from mmvheat.download import (
    DownloadError,
    cache_dir,
    cached_path,
    download_checkpoint,
    is_url,
)
from mmvheat.models import VHeat

CLS_PATH = '/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_tiny.pth'
ARCH = dict(depths=[1, 1, 2, 1], dims=8, post_norm=True, layer_scale=0.1)


@pytest.fixture(scope='module')
def official_cls(tmp_path_factory):
    """An authors'-format classification file (yacs CfgNode included) of a
    small arch, on the 64 grid; and its weights."""
    torch.manual_seed(0)
    ref = ReferenceVHeat([1, 1, 2, 1], [8, 16, 32, 64], True, 0.1,
                         img_size=64, num_classes=10)
    for p in ref.parameters():
        p.data.normal_(0, 0.1)
    path = tmp_path_factory.mktemp('released') / 'vHeat_tiny.pth'
    save_official_checkpoint(path, model=ref.state_dict(), epoch=299,
                             max_accuracy=81.5)
    return str(path), ref.state_dict()


def pretrained(checkpoint) -> VHeat:
    model = VHeat(ARCH, img_size=128, out_indices=(0, 1, 2, 3),
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    model.init_weights()
    return model


def cache_entries(folder) -> list:
    """Files in the cache folder other than lock files."""
    if not osp.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if not f.endswith('.lock'))


def test_is_url():
    assert is_url('https://a/b.pth') and is_url('HTTP://a/b.pth')
    assert not is_url('/data/b.pth') and not is_url('s3://a/b.pth')
    assert not is_url(None)


def test_cache_dir_env_and_torch_hub_default(monkeypatch, tmp_path):
    monkeypatch.setenv('MMVHEAT_CACHE_DIR', str(tmp_path / 'c'))
    assert cache_dir() == str(tmp_path / 'c')
    assert cached_path('https://h/x/vHeat_base.pth?dl=1') == str(
        tmp_path / 'c' / 'vHeat_base.pth')
    monkeypatch.delenv('MMVHEAT_CACHE_DIR')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'th'))
    assert cache_dir() == str(tmp_path / 'th' / 'hub' / 'checkpoints')
    with pytest.raises(DownloadError, match='does not end in a file name'):
        cached_path('https://h/x/')


def test_init_cfg_url_loads_as_local_file_then_hits_cache(
        checkpoint_server, official_cls, tmp_path):
    local, weights = official_cls
    url = checkpoint_server.serve_file(CLS_PATH, local)
    from_url = pretrained(url)
    from_file = pretrained(local)
    assert checkpoint_server.requests == [CLS_PATH]
    own = from_file.state_dict()
    assert set(from_url.state_dict()) == set(own)
    for key, value in from_url.state_dict().items():
        assert torch.equal(value, own[key]), key
    # really the served weights (FVE zero-padded from 16x16 to 32x32)
    assert torch.equal(from_url.layers[0][0].op.linear.weight,
                       weights['layers.0.0.op.linear.weight'])
    fve = from_url.freq_embed[0]
    assert fve.shape[:2] == (32, 32)
    assert torch.equal(fve[:16, :16], weights['freq_embed.0'])
    assert fve[16:].abs().sum() == 0
    cached = tmp_path / 'cache' / 'vHeat_tiny.pth'
    assert cached.read_bytes() == open(local, 'rb').read()

    again = pretrained(url)  # served from the cache: no second request
    assert checkpoint_server.requests == [CLS_PATH]
    assert torch.equal(again.freq_embed[2], from_url.freq_embed[2])


def test_mmengine_loader_reads_url_safely(checkpoint_server, official_cls):
    """load_from / --resume / load_checkpoint go through mmengine's
    CheckpointLoader: its http scheme is ours (safe loader, our cache), so
    the authors' file with its pickled CfgNode loads without yacs."""
    from mmengine.runner.checkpoint import CheckpointLoader

    import mmvheat.engine  # noqa: F401  (installs the loaders; alone too)
    local, weights = official_cls
    url = checkpoint_server.serve_file(CLS_PATH, local)
    ckpt = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert ckpt['config']['DATA']['IMG_SIZE'] == 224
    assert 'yacs' not in sys.modules
    assert torch.equal(ckpt['model']['freq_embed.1'], weights['freq_embed.1'])
    assert CheckpointLoader.load_checkpoint(url)['epoch'] == 299
    assert checkpoint_server.requests == [CLS_PATH]


def test_converter_takes_a_url(checkpoint_server, official_cls, tmp_path):
    local, _ = official_cls
    url = checkpoint_server.serve_file(CLS_PATH, local)
    dst, report = convert_checkpoint(url, str(tmp_path / 'out.pth'),
                                     backbone_only=True, img_size=128)
    ref, _ = convert_checkpoint(local, str(tmp_path / 'ref.pth'),
                                backbone_only=True, img_size=128)
    got, want = torch.load(dst), torch.load(ref)
    assert got['meta']['converted_from'] == url
    assert got['state_dict'].keys() == want['state_dict'].keys()
    for key, value in got['state_dict'].items():
        assert torch.equal(value, want['state_dict'][key]), key
    assert report['adapted']


def test_404_is_a_clear_error(checkpoint_server, tmp_path):
    url = checkpoint_server.url('/releases/download/x/vHeat_huge.pth')
    with pytest.raises(DownloadError) as info:
        read_checkpoint(url)
    msg = str(info.value)
    assert url in msg and 'HTTP 404' in msg
    assert 'Download it by hand' in msg and 'pass the local path' in msg
    assert str(tmp_path / 'cache' / 'vHeat_huge.pth') in msg
    assert cache_entries(tmp_path / 'cache') == []
    with pytest.raises(DownloadError, match='HTTP 404'):  # init_cfg too
        pretrained(url)


def test_truncated_body_leaves_no_cache_entry(checkpoint_server,
                                              official_cls, tmp_path):
    local, _ = official_cls
    url = checkpoint_server.serve_file(CLS_PATH, local)
    size = len(checkpoint_server.files[CLS_PATH])
    checkpoint_server.truncate[CLS_PATH] = size // 2
    with pytest.raises(DownloadError) as info:
        read_checkpoint(url)
    msg = str(info.value)
    assert url in msg and 'incomplete' in msg
    assert f'{size // 2} of {size} bytes' in msg
    assert 'Nothing was cached' in msg and 'Download it by hand' in msg
    assert cache_entries(tmp_path / 'cache') == []
    # the next try downloads again, and succeeds
    del checkpoint_server.truncate[CLS_PATH]
    assert read_checkpoint(url)['epoch'] == 299
    assert cache_entries(tmp_path / 'cache') == ['vHeat_tiny.pth']
    assert len(checkpoint_server.requests) == 2


def test_error_page_and_hash_mismatch_are_refused(checkpoint_server,
                                                  official_cls, tmp_path):
    checkpoint_server.files['/a/vHeat_small.pth'] = b'<html>login</html>'
    with pytest.raises(DownloadError, match="not torch's zip format"):
        download_checkpoint(checkpoint_server.url('/a/vHeat_small.pth'))
    # a sha256 prefix in the name (tools/model_converters --publish) is
    # checked
    local, _ = official_cls
    url = checkpoint_server.serve_file('/a/vheat-t-0123abcd.pth', local)
    with pytest.raises(DownloadError, match='does not start with 0123abcd'):
        download_checkpoint(url)
    assert cache_entries(tmp_path / 'cache') == []
    import hashlib
    sha = hashlib.sha256(open(local, 'rb').read()).hexdigest()[:8]
    url = checkpoint_server.serve_file(f'/a/vheat-t-{sha}.pth', local)
    assert download_checkpoint(url).endswith(f'vheat-t-{sha}.pth')


def test_offline_and_corrupt_cache(checkpoint_server, official_cls,
                                   tmp_path, monkeypatch):
    local, _ = official_cls
    url = checkpoint_server.serve_file(CLS_PATH, local)
    monkeypatch.setenv('MMVHEAT_OFFLINE', '1')
    with pytest.raises(DownloadError, match='MMVHEAT_OFFLINE is set'):
        read_checkpoint(url)
    assert checkpoint_server.requests == []
    # a file put into the cache by hand is used offline
    cached = tmp_path / 'cache' / 'vHeat_tiny.pth'
    cached.parent.mkdir()
    cached.write_bytes(b'broken')
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(url)
    assert f'the cached download of {url})' in str(info.value)
    assert f'Remove it with `rm "{cached}"`' in str(info.value)
    assert 'MMVHEAT_UNSAFE_LOAD' not in str(info.value)
    cached.write_bytes(open(local, 'rb').read())
    assert read_checkpoint(url)['epoch'] == 299
    assert checkpoint_server.requests == []


def test_concurrent_processes_download_once(checkpoint_server, official_cls):
    """Ranks of a distributed run ask at the same moment: one downloads, the
    others wait on the lock and read the cache."""
    local, _ = official_cls
    url = checkpoint_server.serve_file(CLS_PATH, local)
    checkpoint_server.delay_s = 0.3
    paths, errors = [], []

    def fetch():
        try:
            paths.append(download_checkpoint(url))
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(paths)) == 1 and len(paths) == 4
    assert checkpoint_server.requests == [CLS_PATH]


def test_progress_bar(checkpoint_server, official_cls, capsys):
    local, _ = official_cls
    url = checkpoint_server.serve_file(CLS_PATH, local)
    download_checkpoint(url, progress=True)
    err = capsys.readouterr().err
    size = len(checkpoint_server.files[CLS_PATH]) / 1e6
    assert f'Downloading vHeat_tiny.pth: 100.0% {size:.1f}/{size:.1f} MB' \
        in err


def released_detection_file(path) -> dict:
    """A Mask R-CNN checkpoint as the authors released theirs (an mmdet
    ``state_dict`` + ``meta``) for the demo config's reduced model."""
    import importlib

    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    importlib.import_module('mmvheat.models')
    cfg = Config.fromfile(
        osp.join(REPO_ROOT,
                 'configs/demo/mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py'))
    registry = importlib.import_module('mmdet.registry')
    torch.manual_seed(1)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = registry.MODELS.build(cfg.model)
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point()
             else v for k, v in model.state_dict().items()}
    torch.save(dict(state_dict=state,
                    meta=dict(epoch=12, mmdet_version='2.28.2',
                              CLASSES=list(cfg.metainfo.classes))), path)
    return state


def test_tools_test_with_a_released_detection_url(checkpoint_server,
                                                  tmp_path):
    from mmvheat.analysis.demo_data import make_coco
    state = released_detection_file(tmp_path / 'vHeat_tiny_det.pth')
    url = checkpoint_server.serve_file(
        '/MzeroMiko/vHeat/releases/download/vheatdet/vHeat_tiny_det.pth',
        tmp_path / 'vHeat_tiny_det.pth')
    data = tmp_path / 'coco'
    make_coco(str(data), 1, 2)
    proc = subprocess.run(
        [sys.executable, 'tools/test.py',
         'configs/demo/mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py', url,
         '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         f'test_dataloader.dataset.data_root={data}/',
         f'test_evaluator.ann_file={data}/annotations/instances_val2017.json'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert f'Load checkpoint from {url}' in log
    assert 'coco/bbox_mAP:' in log and 'coco/segm_mAP:' in log
    assert len(checkpoint_server.requests) == 1
    cached = torch.load(tmp_path / 'cache' / 'vHeat_tiny_det.pth')
    assert torch.equal(cached['state_dict']['backbone.outnorm1.weight'],
                       state['backbone.outnorm1.weight'])


def test_load_from_url_into_mmpretrain_classifier(checkpoint_server,
                                                  official_cls):
    """`load_from=URL` / `tools/test.py CLS_CONFIG URL`: mmengine's loader
    reads the authors' classification file (weights under 'model') in
    mmpretrain's layout, every key of the classifier filled."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS
    local, weights = official_cls
    url = checkpoint_server.serve_file(CLS_PATH, local)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='mmvheat.VHeat', arch=ARCH, img_size=64,
                          out_indices=(3, )),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    load_checkpoint(model, url, strict=True)  # raises on any missing key
    state = model.state_dict()
    assert torch.equal(state['head.fc.weight'], weights['classifier.3.weight'])
    assert torch.equal(state['backbone.outnorm3.bias'],
                       weights['classifier.0.bias'])
    assert torch.equal(state['backbone.freq_embed.3'], weights['freq_embed.3'])
    assert checkpoint_server.requests == [CLS_PATH]


def test_package_build_ships_the_mim_index(tmp_path):
    """setup.py's build_py puts model-index.yml, the configs its metafiles
    name and the tools under mmvheat/.mim/, where mim looks for them."""
    import subprocess
    import sys

    import yaml
    proc = subprocess.run(
        [sys.executable, 'setup.py', '-q', 'build_py', '--build-lib',
         str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mim = tmp_path / 'mmvheat' / '.mim'
    index = yaml.safe_load((mim / 'model-index.yml').read_text())
    configs = []
    for metafile in index['Import']:
        meta = yaml.safe_load((mim / metafile).read_text())
        configs += [m['Config'] for m in meta['Models']]
    assert len(configs) >= 10
    assert all((mim / c).is_file() for c in configs)
    assert (mim / 'tools' / 'train.py').is_file()
    assert not list(mim.rglob('__pycache__'))


@pytest.mark.parametrize('failure', ['404', 'truncated', 'offline'])
def test_failures_leave_nothing_in_the_cache(checkpoint_server, official_cls,
                                             tmp_path, monkeypatch, failure):
    """No lock file, no temporary file after a failed download."""
    local, _ = official_cls
    url = checkpoint_server.serve_file(CLS_PATH, local)
    if failure == '404':
        url = checkpoint_server.url('/missing/vHeat_base.pth')
    elif failure == 'truncated':
        checkpoint_server.truncate[CLS_PATH] = 100
    else:
        monkeypatch.setenv('MMVHEAT_OFFLINE', '1')
    with pytest.raises(DownloadError):
        download_checkpoint(url)
    folder = tmp_path / 'cache'
    assert not folder.exists() or os.listdir(folder) == []
    # and after a success only the file itself
    if failure == 'truncated':
        del checkpoint_server.truncate[CLS_PATH]
        download_checkpoint(url)
        assert os.listdir(folder) == ['vHeat_tiny.pth']
