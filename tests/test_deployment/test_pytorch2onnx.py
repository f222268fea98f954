"""tools/deployment/pytorch2onnx.py end to end, and its error messages."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from helpers.paths import REPO_ROOT
from mmvheat.checkpoint import CheckpointError
from mmvheat.deployment import (
    DeployError,
    OnnxClassifier,
    build_deploy_model,
    task_of,
)

TOOL = os.path.join(REPO_ROOT, 'tools', 'deployment', 'pytorch2onnx.py')
CLS_CONFIG = os.path.join(REPO_ROOT, 'configs', 'demo',
                          'vheat-demo_4xb16_shapes-cls.py')


def run_tool(*args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT)


def test_cli_dynamic_export_with_verify(tmp_path):
    """Demo classifier (reduced vHeat, 4 classes), normalisation in the
    graph: --verify compares ONNX Runtime with PyTorch at 3 sizes."""
    out = str(tmp_path / 'cls.onnx')
    res = run_tool(CLS_CONFIG, '--out', out, '--dynamic', '--verify',
                   '--normalize', '--shape', '64', '64')
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [ln for ln in res.stdout.splitlines() if ' | 1x4 | ' in ln]
    assert [r.split('|')[0].strip() for r in rows] == [
        '1x3x64x64', '1x3x101x37', '1x3x45x109']
    assert all(float(r.split('|')[2]) < 1e-4 for r in rows)
    assert 'OK tolerance 0.0001' in res.stdout
    assert 'normalisation inside the graph (raw pixels in)' in res.stdout
    session = OnnxClassifier(out)
    assert session.normalize_in_graph and session.dynamic
    pred = session.predict(torch.rand(3, 3, 50, 77) * 255)
    assert pred['pred_score'].shape == (3, 4)
    assert torch.allclose(pred['pred_score'].sum(1), torch.ones(3))
    assert pred['pred_label'].shape == (3, )


def test_cli_errors(tmp_path):
    other = tmp_path / 'resnet.py'
    other.write_text("_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']")
    res = run_tool(str(other), '--out', str(tmp_path / 'x.onnx'))
    assert res.returncode == 1
    assert ("model.backbone is 'ResNet': this tool exports vHeat models "
            'only') in res.stderr
    res = run_tool(CLS_CONFIG, '--out', 'x.onnx', '--opset', '12')
    assert res.returncode == 1 and '--opset 12 is too low' in res.stderr
    res = run_tool(CLS_CONFIG, '--out', 'x.onnx', '--shape', '24', '64')
    assert res.returncode == 1 and '(24, 64) is too small' in res.stderr
    res = run_tool(CLS_CONFIG, str(tmp_path / 'none.pth'), '--out', 'x.onnx')
    assert res.returncode == 1
    assert 'checkpoint file not found' in res.stderr
    assert 'Traceback' not in res.stderr


def test_mismatched_checkpoint_names_the_keys(tmp_path):
    cfg = Config.fromfile(CLS_CONFIG)
    assert task_of(cfg) == 'classifier'
    weights = build_deploy_model(cfg).state_dict()
    weights['head.fc.weight'] = torch.zeros(10, 128)  # 10 classes, not 4
    del weights['backbone.layers.0.0.op.to_k.0.bias']
    path = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict=weights), path)
    with pytest.raises(CheckpointError) as err:
        build_deploy_model(cfg, path)
    msg = str(err.value)
    assert 'does not fit this ImageClassifier' in msg
    assert "missing keys (1): ['backbone.layers.0.0.op.to_k.0.bias']" in msg
    assert 'head.fc.weight: checkpoint (10, 128) vs model (4, 128)' in msg
    cfg.default_scope = 'mmocr'
    with pytest.raises(DeployError, match="default_scope 'mmocr' is not"):
        task_of(cfg)
