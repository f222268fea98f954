"""The suite's pytest fixtures and hooks only; the helpers that tests
import live in the ``helpers`` package next to this file."""
import os
import tempfile

import pytest
import torch

from helpers.checkpoints import save_released_checkpoint
from helpers.server import CheckpointServer


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: takes more than about 20 s (deselect with '
        '-m "not slow")')
    torch.set_num_threads(min(2, torch.get_num_threads()))
    # The suite never downloads: a checkpoint URL that a test (or a tool it
    # runs in a subprocess, which inherits this environment) did not
    # override fails with mmvheat's offline error instead of fetching the
    # released weights, and the user's real cache is never read. Tests of
    # the downloader set their own cache folder and lift the ban for a
    # local server (``checkpoint_server``).
    os.environ['MMVHEAT_OFFLINE'] = '1'
    os.environ['MMVHEAT_CACHE_DIR'] = os.path.join(tempfile.gettempdir(),
                                                   'mmvheat-tests-no-cache')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def checkpoint_server(tmp_path, monkeypatch):
    """A :class:`helpers.server.CheckpointServer`, with downloads allowed
    and mmvheat's cache in ``tmp_path / 'cache'`` (``MMVHEAT_CACHE_DIR``)
    for the test."""
    monkeypatch.setenv('MMVHEAT_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.delenv('MMVHEAT_OFFLINE', raising=False)
    server = CheckpointServer()
    yield server
    server.close()


@pytest.fixture
def split_everywhere(monkeypatch):
    """The ``split`` filter's rule with one split from length 4 (the fixed
    rule splits once from 128), so small test maps take the split path."""
    import mmvheat.ops.split_dct as split_dct
    monkeypatch.setattr(split_dct, 'SPLIT_MIN_LENGTH', 4)
    return 4


@pytest.fixture
def released_checkpoint():
    """``released_checkpoint(lib_config, img_size, path)`` writes a
    downstream checkpoint as the authors released theirs (vHeat-T backbone
    keys with ``outnorm{i}`` under ``backbone.``, the neck and head of the
    library's model of ``lib_config``) and returns ``path``
    (:func:`helpers.checkpoints.save_released_checkpoint`)."""
    return save_released_checkpoint
