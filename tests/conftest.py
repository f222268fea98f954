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


# TEMPORARY (issue 25): slow tests in modules that are being rewritten on
# another branch, marked here until they carry @pytest.mark.slow themselves
# (then this table and the hook below go). Seconds: one run of the whole
# suite on a busy 2-core machine.
SLOW_ELSEWHERE = {
    'test_models/test_hco_impls.py::test_torch_compile_smoke',  # 102
    'test_deployment/test_pytorch2onnx.py::'
    'test_cli_dynamic_export_with_verify',  # 39
    'test_models/test_vheat.py::test_matches_reference_with_fve_resize',
    # 36 (tiny), 18 (small)
    'test_models/test_graph_friendly.py::'
    'test_ema_hook_validation_equal_with_table_reuse',  # 26
    'test_models/test_graph_friendly.py::'
    'test_compile_fullgraph_eval_without_autograd[False-True]',  # 21
    'test_models/test_graph_friendly.py::'
    'test_compile_fullgraph_eval_without_autograd[True-True]',  # 17
    'test_models/test_graph_friendly.py::'
    'test_compile_fullgraph_eval_without_autograd[True-False]',  # 14
    'test_models/test_graph_friendly.py::'
    'test_compile_fullgraph_training_forward_backward[True]',  # 16
    'test_ops/test_filters.py::'
    'test_half_precision_inputs[auto-dtype1-0.002]',  # 21
    'test_deployment/test_onnx_export.py::'
    'test_fixed_file_takes_the_dct_split',  # 19
    'test_deployment/test_pytorch2onnx.py::test_cli_errors',  # 19
    'test_deployment/test_onnx_export.py::'
    'test_benchmark_onnxruntime_rows',  # 17
    'test_models/test_vheat.py::'
    'test_state_dict_keys_and_shapes_match_release[small]',  # 13
    'test_ops/test_filters.py::test_auto_same_choice_on_every_rank',  # 9
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark the tests of ``SLOW_ELSEWHERE`` slow (before ``-m`` selects);
    an entry without parameters covers all of its parametrisations."""
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        path = os.path.relpath(str(item.path), tests_dir)
        node = f'{path}::{item.name}'
        if (node in SLOW_ELSEWHERE
                or f'{path}::{item.originalname}' in SLOW_ELSEWHERE):
            item.add_marker(pytest.mark.slow)


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


def _released_checkpoint(lib_config: str, img_size: int, path):
    """Write a file in the released downstream format to ``path``: the
    authors' backbone keys (with outnorm{i}) under ``backbone.``, plus the
    library's own neck and head keys taken from the model of
    ``lib_config`` (its Swin model of the same task). Returns ``path``."""
    import importlib

    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from reference_vheat import ReferenceVHeat
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
