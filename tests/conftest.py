import http.server
import os
import re
import sys
import tempfile
import threading
import time
import types
import urllib.parse

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# tests/ holds helpers (the reference oracle) imported by the tests.
sys.path.insert(0, os.path.dirname(__file__))

torch.set_num_threads(min(2, torch.get_num_threads()))

# The suite never downloads: a checkpoint URL that a test (or a tool it runs
# in a subprocess, which inherits this environment) did not override fails
# with mmvheat's offline error instead of fetching the released weights, and
# the user's real cache is never read. Tests of the downloader set their own
# cache folder and lift the ban for a local server (``checkpoint_server``).
os.environ['MMVHEAT_OFFLINE'] = '1'
os.environ['MMVHEAT_CACHE_DIR'] = os.path.join(tempfile.gettempdir(),
                                               'mmvheat-tests-no-cache')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def randomise(model: torch.nn.Module) -> dict:
    """Give every tensor distinct random values (LN, gammas, biases too)."""
    sd = model.state_dict()
    g = torch.Generator().manual_seed(1)
    for key, value in sd.items():
        noise = torch.randn(value.shape, generator=g) * 0.1
        if key.endswith('norm.weight') or re.search(r'norm\d?(\.1)?\.weight$',
                                                    key) or 'gamma' in key:
            noise = noise + 1
        value.copy_(noise)
    model.load_state_dict(sd)
    return sd


def _fake_yacs():
    """Modules that pickle like yacs' CfgNode (a dict subclass with its
    flags in __dict__, including a set)."""
    yacs = types.ModuleType('yacs')
    config = types.ModuleType('yacs.config')

    class CfgNode(dict):

        def __init__(self, init=None):
            super().__init__(init or {})
            self.__dict__['__immutable__'] = False
            self.__dict__['__deprecated_keys__'] = set()
            self.__dict__['__new_allowed__'] = False

    CfgNode.__module__ = 'yacs.config'
    CfgNode.__qualname__ = 'CfgNode'
    config.CfgNode = CfgNode
    yacs.config = config
    return yacs, config


def save_official_checkpoint(path, **entries) -> None:
    """``torch.save`` a file in the layout of the authors' classification
    checkpoints: ``entries`` (``model=state_dict``, ``model_ema``, ...) plus
    the trainer's yacs ``CfgNode`` under ``config``, pickled from a stand-in
    ``yacs.config`` module that is removed again before anything loads it."""
    yacs, config = _fake_yacs()
    sys.modules['yacs'], sys.modules['yacs.config'] = yacs, config
    try:
        cfg = config.CfgNode({'MODEL': config.CfgNode({'TYPE': 'vheat'}),
                              'DATA': config.CfgNode({'IMG_SIZE': 224})})
        torch.save(dict(entries, config=cfg), path)
    finally:
        del sys.modules['yacs'], sys.modules['yacs.config']


class _FileHandler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        path = urllib.parse.urlparse(self.path).path
        server.requests.append(path)
        time.sleep(server.delay_s)
        body = server.files.get(path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        cut = server.truncate.get(path)
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = True

    def log_message(self, *args):
        pass


class CheckpointServer:
    """A real HTTP server on 127.0.0.1 (a free port) serving bytes by path.

    ``files[path] = bytes`` serves them (other paths: 404);
    ``truncate[path] = n`` sends the full ``Content-Length`` but only ``n``
    bytes; ``delay_s`` waits before each answer; ``requests`` lists the
    requested paths.
    """

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                     _FileHandler)
        self.httpd.files, self.httpd.truncate = {}, {}
        self.httpd.requests, self.httpd.delay_s = [], 0.0
        self.files, self.truncate = self.httpd.files, self.httpd.truncate
        self.requests = self.httpd.requests
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def delay_s(self) -> float:
        return self.httpd.delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        self.httpd.delay_s = value

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.httpd.server_address[1]}{path}'

    def serve_file(self, path: str, filename) -> str:
        """Serve a local file's bytes at ``path``; returns its URL."""
        with open(filename, 'rb') as f:
            self.files[path] = f.read()
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def checkpoint_server(tmp_path, monkeypatch):
    """A :class:`CheckpointServer`, with downloads allowed and mmvheat's
    cache in ``tmp_path / 'cache'`` (``MMVHEAT_CACHE_DIR``) for the test."""
    monkeypatch.setenv('MMVHEAT_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.delenv('MMVHEAT_OFFLINE', raising=False)
    server = CheckpointServer()
    yield server
    server.close()


@pytest.fixture
def split_everywhere(monkeypatch):
    """The default ``matmul`` filter with the even/odd split from length 4
    (the fixed rule starts at 96, or 128 under autograd), so small test maps
    take the split path (without autograd maps of 4-7 split once, 8-15
    twice, ...; with autograd once)."""
    import mmvheat.ops.split_dct as split_dct
    monkeypatch.setattr(split_dct, 'SPLIT_MIN_LENGTH', 4)
    monkeypatch.setattr(split_dct, 'SPLIT_MIN_LENGTH_GRAD', 4)
    return 4


def resolve_impl(request, impl: str) -> str:
    """A test's ``hco_impl`` parameter: ``'matmul-split'`` is ``'matmul'``
    with :func:`split_everywhere` applied; other names are as they are."""
    if impl == 'matmul-split':
        request.getfixturevalue('split_everywhere')
        return 'matmul'
    return impl


DEMO_DET_CONFIG = os.path.join(REPO_ROOT, 'configs', 'demo',
                               'mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py')


def demo_detector(seed: int = 0):
    """(model, cfg): the reduced demo Mask R-CNN (4 classes, 64-channel
    FPN), eval mode, every weight matrix redrawn from a seeded normal with
    unit gain (std 1/sqrt(fan_in); head biases std 0.1) so that its scores
    spread well above ties and many boxes pass the score threshold. No
    checkpoint, no data needed."""
    from mmengine.config import Config

    from mmvheat.deployment import build_deploy_model
    cfg = Config.fromfile(DEMO_DET_CONFIG)
    torch.manual_seed(seed)
    model = build_deploy_model(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # unit-gain weights: spread scores, no overflow
        for name, p in model.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            elif not name.startswith('backbone'):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        # decided mask logits (as a trained head's): few pixels sit at the
        # 0.5 threshold, where float rounding would flip them
        model.roi_head.mask_head.conv_logits.weight.mul_(4)
    return model.eval(), cfg


def det_data_samples(input_shape, img_shape, ori_shape=None,
                     scale_factor=(1.0, 1.0)) -> list:
    """One mmdet ``DetDataSample`` with the metainfo ``predict`` reads: an
    image resized to ``img_shape`` and padded to ``input_shape``."""
    from mmdet.structures import DetDataSample
    meta = dict(img_shape=tuple(img_shape),
                ori_shape=tuple(ori_shape or img_shape),
                scale_factor=tuple(scale_factor),
                pad_shape=tuple(input_shape),
                batch_input_shape=tuple(input_shape))
    return [DetDataSample(metainfo=meta)]


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU per pair of (N, H, W) boolean masks (1 where both are empty)."""
    a, b = a.flatten(1).bool(), b.flatten(1).bool()
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1),
                       torch.ones_like(union))
