"""tools/deployment/pytorch2aoti.py: ``torch.export`` + AOTInductor
packages, their equality with the PyTorch model, and the tool's errors."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from helpers.numerics import rel_err
from helpers.paths import REPO_ROOT
from mmvheat.deployment import (
    build_deploy_model,
    export_aoti,
    export_graph,
    load_aoti,
    reference_outputs,
)

TOOL = os.path.join(REPO_ROOT, 'tools', 'deployment', 'pytorch2aoti.py')
CLS_CONFIG = os.path.join(REPO_ROOT, 'configs', 'demo',
                          'vheat-demo_4xb16_shapes-cls.py')
DET_CONFIG = os.path.join(REPO_ROOT, 'configs', 'demo',
                          'mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py')


def run_tool(*args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT, timeout=1200)


@pytest.mark.slow  # one AOTInductor compile
def test_package_equals_pytorch(tmp_path):
    """The demo classifier at a size off its FVE grid, batch 2: the package
    computes the PyTorch model's logits."""
    model = build_deploy_model(Config.fromfile(CLS_CONFIG))
    size = (48, 56)
    path = export_aoti(export_graph(model, size), str(tmp_path / 'c.pt2'),
                       size, batch=2)
    package = load_aoti(path)
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        logits = package(images)[0]
    ref = reference_outputs(model, 'classifier', images)[0]
    assert logits.shape == (2, 4)
    assert rel_err(logits, ref) < 1e-4


@pytest.mark.slow  # one AOTInductor compile
def test_dynamic_package_serves_any_size(tmp_path):
    """Named dims H, W from 33 to 256 (max_size): one package computes the
    undeployed classifier's logits at sizes that are not multiples of
    32."""
    model = build_deploy_model(Config.fromfile(CLS_CONFIG))
    path = export_aoti(export_graph(model), str(tmp_path / 'd.pt2'),
                       (64, 64), max_size=256)
    package = load_aoti(path)
    for size in [(45, 77), (96, 33)]:
        images = torch.randn(1, 3, *size)
        with torch.no_grad():
            logits = package(images)[0]
        ref = reference_outputs(model, 'classifier', images)[0]
        assert rel_err(logits, ref) < 1e-4


@pytest.mark.slow  # one AOTInductor compile
def test_cli_backbone_with_verify(tmp_path):
    out = str(tmp_path / 'backbone.pt2')
    res = run_tool(CLS_CONFIG, '--out', out, '--backbone-only', '--shape',
                   '64', '64', '--normalize', '--verify')
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'wrote' in res.stdout and '(backbone, 1x3x64x64' in res.stdout
    assert 'OK tolerance 0.0001' in res.stdout
    assert os.path.getsize(out) > 0


@pytest.mark.slow  # one AOTInductor compile
def test_cli_dynamic_package_with_verify(tmp_path):
    out = str(tmp_path / 'dynamic.pt2')
    res = run_tool(CLS_CONFIG, '--out', out, '--backbone-only', '--shape',
                   '64', '48', '--dynamic', '--max-size', '256', '--verify')
    assert res.returncode == 0, res.stderr[-3000:]
    assert '(backbone, 1x3xHxW, H and W 33-256' in res.stdout
    assert 'OK tolerance 0.0001' in res.stdout


def test_cli_errors(tmp_path):
    out = str(tmp_path / 'x.pt2')
    res = run_tool(DET_CONFIG, '--out', out)
    assert res.returncode == 1
    assert 'pytorch2aoti.py: error: pytorch2aoti compiles classifiers, ' \
        'UperNet and backbones; for the whole Mask R-CNN use ' \
        'pytorch2onnx.py' in res.stderr
    res = run_tool('nowhere.py', '--out', out)
    assert res.returncode == 1
    assert 'config file not found: nowhere.py' in res.stderr
    res = run_tool(CLS_CONFIG, '--out', out, '--batch', '0')
    assert 'pytorch2aoti.py: error: --batch must be >= 1, got 0' in res.stderr
    assert not os.path.exists(out)
    res = run_tool(CLS_CONFIG, '--out', out, '--dynamic', '--shape', '32',
                   '32')
    assert res.returncode == 1
    assert 'pytorch2aoti.py: error: --dynamic takes H and W from 33 to ' \
        '--max-size (1024)' in res.stderr
