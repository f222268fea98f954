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

torch.set_num_threads(min(2, torch.get_num_threads()))

# The suite never downloads: a checkpoint URL that a test (or a tool it runs
# in a subprocess, which inherits this environment) did not override fails
# with mmvheat's offline error instead of fetching the released weights, and
# the user's real cache is never read. Tests of the downloader set their own
# cache folder and lift the ban for a local server (``checkpoint_server``).
os.environ['MMVHEAT_OFFLINE'] = '1'
os.environ['MMVHEAT_CACHE_DIR'] = os.path.join(tempfile.gettempdir(),
                                               'mmvheat-tests-no-cache')


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: takes more than about 20 s (deselect with '
        '-m "not slow")')


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
    """The ``split`` filter's rule with one split from length 4 (the fixed
    rule splits once from 128), so small test maps take the split path."""
    import mmvheat.ops.split_dct as split_dct
    monkeypatch.setattr(split_dct, 'SPLIT_MIN_LENGTH', 4)
    return 4


def resolve_impl(request, impl: str) -> str:
    """A test's ``hco_impl`` parameter: ``'split-small'`` is ``'split'``
    with :func:`split_everywhere` applied; other names are as they are."""
    if impl == 'split-small':
        request.getfixturevalue('split_everywhere')
        return 'split'
    return impl


# Reduced archs for tests where the full size is not the point; SMALL has
# post_norm and layer scale on, so both block variants are covered.
SMALL = dict(depths=[1, 2, 1, 1], dims=16, post_norm=True, layer_scale=0.5)
SMALL_PRE = dict(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32])


def reference_for(model, **kwargs):
    """The authors'-layout oracle with ``model``'s arch (VHeat) and FVE
    grid (:class:`mmvheat.analysis.reference_vheat.ReferenceVHeat`)."""
    from mmvheat.analysis.reference_vheat import ReferenceVHeat
    s = model.arch_settings
    return ReferenceVHeat(s['depths'], s['dims'], s['post_norm'],
                          s['layer_scale'], model.img_size[0], **kwargs)


def randomised_reference(model, **kwargs):
    """:func:`reference_for` ``model`` with random weights (via
    :func:`randomise`), loaded into ``model`` too (the authors' key layout,
    mapped on load). Returns ``(reference, its state dict)``."""
    ref = reference_for(model, **kwargs)
    sd = randomise(ref)
    own = {k: v for k, v in sd.items() if not k.startswith('classifier.')}
    model.load_state_dict(own, strict=not kwargs.get('num_classes'))
    return ref, sd


# A tiny mmpretrain classifier config on generated ImageNet-style data, for
# the tools' error paths (tests/test_strict_loading.py,
# tests/test_tools/test_tidy_errors.py). TINY_CLS_ARCH is the backbone's
# arch; the head has TINY_CLS_CLASSES classes.
TINY_CLS_ARCH = dict(depths=[1, 1, 1, 1], dims=8)
TINY_CLS_CLASSES = 4
TINY_CLS_CONFIG = """
_base_ = [{base!r}]
data_root = {data!r}
model = dict(backbone=dict(arch=dict(_delete_=True, **{arch!r}), img_size=64),
             head=dict(num_classes={classes}, in_channels=64))
data_preprocessor = dict(num_classes={classes})
dataset = dict(type='CustomDataset', data_root=data_root)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, data_prefix='train',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, data_prefix='val',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1))
"""


def write_tiny_cls_config(folder, data_root: str, **overrides) -> str:
    """Write :data:`TINY_CLS_CONFIG` (on the real ImageNet config) into
    ``folder``; ``overrides`` are appended as ``key = repr(value)`` lines.
    Returns the path."""
    import os.path as osp
    text = TINY_CLS_CONFIG.format(
        base=osp.join(REPO_ROOT,
                      'configs/classification/vheat-tiny_16xb128_in1k.py'),
        data=str(data_root), arch=TINY_CLS_ARCH, classes=TINY_CLS_CLASSES)
    text += ''.join(f'{k} = {v!r}\n' for k, v in overrides.items())
    path = os.path.join(str(folder), 'tiny_cls.py')
    with open(path, 'w') as f:
        f.write(text)
    return path


def save_tiny_official(path, arch=None, num_classes=TINY_CLS_CLASSES,
                       seed=0) -> dict:
    """An authors'-format classification file (``model`` + yacs config) of
    ``arch`` (default :data:`TINY_CLS_ARCH`) at 64x64; returns its
    weights."""
    from mmvheat.models import VHeat
    torch.manual_seed(seed)
    model = VHeat(arch or TINY_CLS_ARCH, img_size=64)
    ref = reference_for(model, num_classes=num_classes)
    for p in ref.parameters():
        p.data.normal_(0, 0.1)
    save_official_checkpoint(path, model=ref.state_dict(), epoch=300)
    return ref.state_dict()


def _released_checkpoint(lib_config: str, img_size: int, path):
    """Write a file in the released downstream format to ``path``: the
    authors' backbone keys (with outnorm{i}) under ``backbone.``, plus the
    library's own neck and head keys taken from the model of
    ``lib_config`` (its Swin model of the same task). Returns ``path``."""
    import importlib

    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmvheat.analysis.reference_vheat import ReferenceVHeat
    cfg = Config.fromfile(lib_config)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        swin_model = registry.MODELS.build(cfg.model)
    state = {k: v for k, v in swin_model.state_dict().items()
             if not k.startswith('backbone.')}
    ref = ReferenceVHeat([2, 2, 6, 2], [96, 192, 384, 768], False, None,
                         img_size=img_size, outnorm=True)
    state.update({f'backbone.{k}': v for k, v in ref.state_dict().items()})
    torch.save(dict(state_dict=state, meta=dict(epoch=12)), path)
    return path


@pytest.fixture
def released_checkpoint():
    """``released_checkpoint(lib_config, img_size, path)`` writes a
    downstream checkpoint as the authors released theirs (vHeat-T backbone
    keys with ``outnorm{i}`` under ``backbone.``, the neck and head of the
    library's model of ``lib_config``) and returns ``path``."""
    return _released_checkpoint


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
