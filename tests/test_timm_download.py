"""timm's ``pretrained=True`` goes through mmvheat's downloader: its cache,
MMVHEAT_OFFLINE / MMVHEAT_CACHE_DIR and its errors; timm's and torch hub's
caches are looked at first. A local HTTP server stands in for the release
(conftest.checkpoint_server); TORCH_HOME is a temporary folder."""
import os

import pytest
import timm
import torch

import mmvheat.timm  # noqa: F401
from helpers.tiny_classifier import save_tiny_official
from mmvheat.checkpoint import CheckpointError
from mmvheat.download import DownloadError

ARCH = dict(depths=[1, 1, 1, 1], dims=8)
PATH = '/MzeroMiko/vHeat/releases/download/vheatcls/vHeat_tiny.pth'


@pytest.fixture
def release(checkpoint_server, tmp_path, monkeypatch):
    """The server with a small authors'-format file at the release path,
    torch hub's cache in tmp_path/torch; returns (server, url, weights)."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    weights = save_tiny_official(tmp_path / 'src.pth', num_classes=10)
    url = checkpoint_server.serve_file(PATH, tmp_path / 'src.pth')
    return checkpoint_server, url, weights


def create(url, **kwargs):
    return timm.create_model('vheat_tiny', pretrained=True, num_classes=10,
                             img_size=64, pretrained_cfg_overlay=dict(
                                 url=url), **ARCH, **kwargs)


def loaded_right(model, weights) -> bool:
    return torch.equal(model.head.fc.weight, weights['classifier.3.weight'])


def test_downloads_into_mmvheat_cache_once(release, tmp_path):
    server, url, weights = release
    model = create(url)
    assert loaded_right(model, weights)
    assert server.requests == [PATH]
    assert (tmp_path / 'cache' / 'vHeat_tiny.pth').is_file()
    assert not (tmp_path / 'torch').exists() or not os.listdir(
        tmp_path / 'torch' / 'hub' / 'checkpoints')
    assert loaded_right(create(url), weights)
    assert server.requests == [PATH]  # the second time from the cache
    assert os.listdir(tmp_path / 'cache') == ['vHeat_tiny.pth']  # no lock


def test_offline_error_names_url_and_hand_download(release, monkeypatch):
    """Reproduction 3: offline, nothing cached: mmvheat's error, not a raw
    URLError."""
    server, url, _ = release
    monkeypatch.setenv('MMVHEAT_OFFLINE', '1')
    with pytest.raises(DownloadError) as info:
        create(url)
    msg = str(info.value)
    assert url in msg and 'MMVHEAT_OFFLINE is set' in msg
    assert 'Download it by hand' in msg
    assert "pretrained_cfg_overlay=dict(file=PATH)" in msg
    assert server.requests == []


def test_release_url_offline_without_override(monkeypatch, tmp_path):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('MMVHEAT_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('MMVHEAT_OFFLINE', '1')
    with pytest.raises(DownloadError, match='github.com/MzeroMiko/vHeat/'
                       'releases/download/vheatcls/vHeat_tiny.pth'):
        timm.create_model('vheat_tiny', pretrained=True)


@pytest.mark.parametrize('where', ['torch_hub', 'timm_cache_dir'])
def test_timm_and_torch_hub_caches_are_looked_at_first(release, tmp_path,
                                                       monkeypatch, where):
    server, url, weights = release
    monkeypatch.setenv('MMVHEAT_OFFLINE', '1')
    folder = (tmp_path / 'torch' / 'hub' / 'checkpoints'
              if where == 'torch_hub' else tmp_path / 'timm_cache')
    folder.mkdir(parents=True)
    (folder / 'vHeat_tiny.pth').write_bytes((tmp_path / 'src.pth')
                                            .read_bytes())
    kwargs = dict(cache_dir=str(folder)) if where == 'timm_cache_dir' \
        else {}
    model = create(url, **kwargs)
    assert loaded_right(model, weights)
    assert server.requests == []
    assert model.pretrained_cfg['file'] == str(folder / 'vHeat_tiny.pth')


def test_corrupt_cached_file_names_url_and_rm(release, tmp_path,
                                              monkeypatch):
    server, url, _ = release
    monkeypatch.setenv('MMVHEAT_OFFLINE', '1')
    cached = tmp_path / 'cache' / 'vHeat_tiny.pth'
    cached.parent.mkdir()
    cached.write_bytes(b'<html>rate limited</html>')
    with pytest.raises(CheckpointError) as info:
        create(url)
    msg = str(info.value)
    assert f'the cached download of {url}' in msg
    assert f'rm "{cached}"' in msg
    assert 'MMVHEAT_UNSAFE_LOAD' not in msg


def test_explicit_file_still_wins(release, tmp_path):
    server, url, weights = release
    model = timm.create_model(
        'vheat_tiny', pretrained=True, num_classes=10, img_size=64,
        pretrained_cfg_overlay=dict(file=str(tmp_path / 'src.pth')), **ARCH)
    assert loaded_right(model, weights)
    assert server.requests == []
