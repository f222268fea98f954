"""tools/deployment/test_onnx.py on the demo configs and a few generated
demo images per task, OnnxSegmentor's sliding window against mmseg's, and
the tool's error messages."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from helpers.detection import demo_detector
from helpers.paths import REPO_ROOT
from mmvheat.deployment import (
    DeployError,
    OnnxSegmentor,
    build_deploy_model,
    export_graph,
    export_onnx,
    metadata_for,
    preprocess_of,
    slide_windows,
    task_metadata,
)

TOOL = os.path.join(REPO_ROOT, 'tools', 'deployment', 'test_onnx.py')
DEMO = os.path.join(REPO_ROOT, 'configs', 'demo')
CONFIGS = {
    'classifier': os.path.join(DEMO, 'vheat-demo_4xb16_shapes-cls.py'),
    'segmentor': os.path.join(DEMO,
                              'vheat-demo_upernet_4xb8-1k_shapes-128x128.py'),
    'detector': os.path.join(DEMO,
                             'mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py'),
}
ROOTS = {'classifier': 'shapes_cls', 'segmentor': 'shapes_ade',
         'detector': 'shapes_coco'}


def run_tool(*args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT)


def export_demo(task, path, model=None, normalize=False):
    cfg = Config.fromfile(CONFIGS[task])
    if model is None:
        torch.manual_seed(0)
        model = build_deploy_model(cfg)
    graph = export_graph(model, normalize=normalize)
    export_onnx(graph, path, (64, 64) if task != 'detector' else (128, 128),
                dynamic=True,
                metadata={**metadata_for(normalize, preprocess_of(model)),
                          **task_metadata(model, graph)})
    return model


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    from mmvheat.analysis.demo_data import (
        make_ade20k,
        make_coco,
        make_imagenet,
    )
    root = tmp_path_factory.mktemp('demo')
    make_coco(str(root / 'shapes_coco'), 4, 4, size=(128, 128), seed=0)
    make_ade20k(str(root / 'shapes_ade'), 4, 4, size=(128, 128), seed=0)
    make_imagenet(str(root / 'shapes_cls'), 8, 8, size=(64, 64), seed=0)
    return root


def _options(task, root):
    data = str(root / ROOTS[task])
    opts = [f'test_dataloader.dataset.data_root={data}']
    if task == 'detector':
        opts.append('test_evaluator.ann_file='
                    f'{data}/annotations/instances_val2017.json')
    return opts


def test_slide_windows_as_mmseg():
    # 100 x 130 image, 64 crop, 43 stride: rows 0, 36; columns 0, 43, 66
    assert slide_windows(100, 130, (64, 64), (43, 43)) == [
        (0, 64, 0, 64), (0, 64, 43, 107), (0, 64, 66, 130),
        (36, 100, 0, 64), (36, 100, 43, 107), (36, 100, 66, 130)]
    assert slide_windows(40, 50, (64, 64), (43, 43)) == [(0, 40, 0, 50)]


@pytest.mark.slow
def test_segmentor_slide_matches_mmseg(tmp_path):
    """Slide mode from the config (crop 64, stride 43) against mmseg's own
    ``slide_inference`` on the same weights, odd image size."""
    cfg = Config.fromfile(CONFIGS['segmentor'])
    cfg.model.test_cfg = dict(mode='slide', crop_size=(64, 64),
                              stride=(43, 43))
    torch.manual_seed(0)
    model = build_deploy_model(cfg)
    path = str(tmp_path / 'seg.onnx')
    export_demo('segmentor', path, model)
    session = OnnxSegmentor(path, cfg)
    image = torch.randn(1, 3, 100, 130)
    ours = session.inference(image)
    with torch.no_grad():
        ref = model.slide_inference(image, [dict(img_shape=(100, 130),
                                                 ori_shape=(100, 130))])
    assert ours.shape == ref.shape == (1, 4, 100, 130)
    assert ((ours - ref).abs().max() / ref.abs().max()) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize('task', ['classifier', 'segmentor', 'detector'])
def test_tool_on_demo_data(task, demo_root, tmp_path):
    """The tool runs the config's dataloader and evaluator through the
    file and prints tools/test.py's metric names."""
    path = str(tmp_path / f'{task}.onnx')
    if task == 'detector':
        model, _ = demo_detector()
        export_demo(task, path, model)
    else:
        export_demo(task, path, normalize=task == 'classifier')
    res = run_tool(CONFIGS[task], path, '--cfg-options',
                   *_options(task, demo_root))
    assert res.returncode == 0, res.stderr[-3000:]
    key = {'classifier': 'accuracy/top1: ', 'segmentor': 'mIoU: ',
           'detector': 'coco/segm_mAP: '}[task]
    assert any(line.startswith(key) for line in res.stdout.splitlines()), \
        res.stdout[-2000:]
    assert 'ran 4 images' in res.stdout or task == 'classifier'


@pytest.mark.slow
def test_tool_errors(tmp_path):
    res = run_tool(CONFIGS['detector'], str(tmp_path / 'none.onnx'))
    assert res.returncode == 1
    assert 'ONNX file not found' in res.stderr
    path = str(tmp_path / 'cls.onnx')
    export_demo('classifier', path)
    res = run_tool(CONFIGS['segmentor'], path)
    assert res.returncode == 1
    assert ('is a classifier export but the config is a segmentor config'
            in res.stderr)
    res = run_tool(CONFIGS['classifier'], path, '--cfg-options',
                   f'test_dataloader.dataset.data_root={tmp_path}/nowhere')
    assert res.returncode == 1
    assert (f'test dataset not found: the config expects {tmp_path}/nowhere'
            in res.stderr)
    assert 'Traceback' not in res.stderr
    with pytest.raises(DeployError, match='needs a segmentor export'):
        OnnxSegmentor(path)
