"""ONNX export of vHeat: one dynamic file against PyTorch at several sizes,
fixed-size files with baked tables, sessions, int8 and error messages."""
import onnx
import pytest
import torch
import torch.nn as nn

from helpers.numerics import perturbed_vheat, rel_err
from mmvheat.deployment import (
    DeployError,
    OnnxBackbone,
    check_opset,
    check_size,
    export_onnx,
    exportable_backbone,
    quantize_onnx,
    quantize_torch,
)
from mmvheat.deployment.graph import MatmulAdaptiveAvgPool2d
from mmvheat.models import VHeat

# reduced arch (post-norm and layer scale on), FVEs for a 64 input
ARCH = dict(depths=[1, 2, 1, 1], dims=16, post_norm=True, layer_scale=0.5)


class Features(nn.Module):
    """The exported module of a backbone-only export."""
    task = 'backbone'

    def __init__(self, backbone, fixed_size=None):
        super().__init__()
        self.backbone = exportable_backbone(backbone, fixed_size)

    def forward(self, x):
        return self.backbone(x)


def small_vheat(**kwargs) -> VHeat:
    return perturbed_vheat(ARCH, **kwargs)


@pytest.fixture(scope='module')
def dynamic_file(tmp_path_factory):
    model = small_vheat()
    path = str(tmp_path_factory.mktemp('onnx') / 'small_dynamic.onnx')
    export_onnx(Features(model), path, (64, 64), dynamic=True)
    return model, path


def _outputs(model, x):
    with torch.no_grad():
        return model(x)


def test_exportable_form_equals_backbone():
    model = small_vheat()
    x = torch.randn(2, 3, 45, 70)
    ref = _outputs(model, x)
    for fixed in (None, (45, 70)):
        exportable = exportable_backbone(model, fixed)
        assert exportable.deployed == (fixed is not None)
        assert not model.deployed  # the user's model is not changed
        outs = _outputs(exportable, x)
        assert [o.shape for o in outs] == [r.shape for r in ref]
        assert max(rel_err(o, r) for o, r in zip(outs, ref)) < 1e-6


@pytest.mark.parametrize('shape', [(1, 37, 53), (3, 96, 70)])
def test_one_dynamic_file_matches_pytorch_at_any_size(dynamic_file, shape):
    """Odd, non-square, not multiples of 32, other batches than exported."""
    model, path = dynamic_file
    session = OnnxBackbone(path)
    x = torch.randn(shape[0], 3, *shape[1:])
    outs = session(x)
    ref = _outputs(model, x)
    assert [tuple(o.shape) for o in outs] == [tuple(r.shape) for r in ref]
    assert max(rel_err(o, r) for o, r in zip(outs, ref)) < 1e-4


def test_dynamic_file_computes_tables_fixed_file_bakes_them(dynamic_file,
                                                            tmp_path):
    model, dyn_path = dynamic_file
    ops = {n.op_type for n in onnx.load(dyn_path).graph.node}
    assert {'Resize', 'Cos', 'Pow', 'Exp'} <= ops  # FVE resize, bases, decay
    path = str(tmp_path / 'fixed.onnx')
    export_onnx(Features(model, (48, 80)), path, (48, 80), batch=2,
                dynamic=False)
    graph = onnx.load(path).graph
    assert not {'Resize', 'Cos', 'Exp'} & {n.op_type for n in graph.node}
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim
            ] == [2, 3, 48, 80]
    session = OnnxBackbone(path)
    x = torch.randn(2, 3, 48, 80)
    assert max(rel_err(o, r) for o, r in zip(session(x), _outputs(model, x))
               ) < 1e-4
    with pytest.raises(DeployError, match=r'exported for \(48, 80\) inputs '
                       'only.*--dynamic'):
        session(torch.randn(2, 3, 64, 64))


@pytest.mark.slow
def test_fixed_file_takes_the_dct_split(tmp_path, monkeypatch):
    """A fixed-size export of a 'split' model runs the split by the fixed
    rule of its baked lengths (lowered here so that every stage splits:
    more, smaller MatMuls, same outputs); a dynamic one takes the dense
    products, since the rule needs the lengths."""
    import mmvheat.ops.split_dct as split_dct
    model = small_vheat(hco_impl='split')
    x = torch.randn(2, 3, 48, 80)
    ref = _outputs(small_vheat(), x)
    assert exportable_backbone(model).hco_impl == 'matmul'

    def export(min_length):
        monkeypatch.setattr(split_dct, 'SPLIT_MIN_LENGTH', min_length)
        features = Features(model, (48, 80))
        assert features.backbone.hco_impl == 'split'
        path = str(tmp_path / f'fixed_{min_length}.onnx')
        export_onnx(features, path, (48, 80), batch=2, dynamic=False)
        nodes = onnx.load(path).graph.node
        return path, sum(n.op_type == 'MatMul' for n in nodes)
    _, dense_matmuls = export(10**6)
    path, split_matmuls = export(4)
    assert split_matmuls > dense_matmuls
    outs = OnnxBackbone(path)(x)
    assert max(rel_err(o, r) for o, r in zip(outs, ref)) < 1e-5


def test_int8_runs_and_stays_close(dynamic_file, tmp_path):
    model, path = dynamic_file
    x = torch.randn(2, 3, 64, 80)
    ref = _outputs(model, x)
    int8 = quantize_onnx(path, str(tmp_path / 'int8.onnx'))
    ops = {n.op_type for n in onnx.load(int8).graph.node}
    assert 'DynamicQuantizeLinear' in ops or 'MatMulInteger' in ops
    outs = OnnxBackbone(int8)(x)
    errs = [rel_err(o, r) for o, r in zip(outs, ref)]
    assert 0 < max(errs) < 0.1, errs
    quantized = quantize_torch(model)
    assert type(quantized.layers[0][0].op.linear).__module__.startswith(
        'torch.ao.nn.quantized')
    assert isinstance(model.layers[0][0].op.linear, nn.Linear)  # untouched
    errs = [rel_err(o, r) for o, r in zip(_outputs(quantized, x), ref)]
    assert 0 < max(errs) < 0.1, errs


def test_session_rejects_small_and_malformed_inputs(dynamic_file):
    session = OnnxBackbone(dynamic_file[1])
    with pytest.raises(DeployError, match=r'\(31, 64\) is too small: vHeat '
                       r'needs H and W >= 32 px'):
        session(torch.randn(1, 3, 31, 64))
    with pytest.raises(DeployError, match=r'expected images \(B, 3, H, W\), '
                       r'got \(3, 64, 64\)'):
        session(torch.randn(3, 64, 64))


def test_opset_and_size_checks():
    with pytest.raises(DeployError, match='--opset 13 is too low: the graph '
                       'needs opset >= 18'):
        check_opset(13)
    with pytest.raises(DeployError, match='newer than the installed onnx'):
        check_opset(onnx.defs.onnx_opset_version() + 1)
    assert check_opset(18) == 18
    with pytest.raises(DeployError, match=r'\(16, 224\) is too small'):
        check_size((16, 224))


@pytest.mark.parametrize('out_size', [2, 3, 6, (1, 4)])
def test_matmul_adaptive_pool_equals_torch(out_size):
    for hw in [(4, 4), (5, 7), (17, 9), (2, 3)]:
        x = torch.randn(2, 8, *hw)
        assert rel_err(MatmulAdaptiveAvgPool2d(out_size)(x),
                       nn.AdaptiveAvgPool2d(out_size)(x)) < 1e-6


@pytest.mark.slow
def test_benchmark_onnxruntime_rows():
    from mmvheat.analysis.benchmark import run_config
    row = run_config('vheat-t:matmul', 'infer', 'fp32', 64, 1, warmup=0,
                     runs=1, backend='onnxruntime-fixed')
    assert row['img_per_s'] > 0 and len(row['times']) == 1
    with pytest.raises(ValueError, match='onnxruntime rows: vheat models, '
                       'infer, fp32'):
        run_config('swin-t', 'infer', 'fp32', 64, 1, backend='onnxruntime')
