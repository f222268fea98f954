"""The whole Mask R-CNN in one ONNX file: the export-friendly PyTorch graph
and the file in ONNX Runtime against mmdet's own ``predict`` on the same
weights (the reduced demo detector), the runtime, and the error messages."""
import copy

import numpy as np
import onnx
import pytest
import torch

from helpers.detection import demo_detector, det_data_samples, mask_iou
from mmvheat.deployment import (
    DeployError,
    MaskRCNNGraph,
    OnnxDetector,
    check_file_fits_config,
    check_mask_rcnn,
    export_graph,
    export_onnx,
    paste_masks,
)
from mmvheat.deployment.detection import level_of_rois

# (input H, W, resized image h, w inside the padding)
CASES = [(128, 128, 128, 128), (96, 160, 90, 150), (160, 64, 151, 64)]


@pytest.fixture(scope='module')
def detector():
    return demo_detector()


@pytest.fixture(scope='module')
def det_file(detector, tmp_path_factory):
    model, _ = detector
    path = str(tmp_path_factory.mktemp('det') / 'mask_rcnn.onnx')
    graph = export_graph(model)
    from mmvheat.deployment import task_metadata
    export_onnx(graph, path, (128, 128), dynamic=True,
                metadata=task_metadata(model, graph))
    return path


def _reference(model, image, img_shape):
    """mmdet's predict (rescale=False: network input coordinates; masks
    pasted at img_shape)."""
    samples = det_data_samples(image.shape[2:], img_shape)
    with torch.no_grad():
        return model.predict(image, samples, rescale=False)[0].pred_instances


def _compare(dets, labels, masks, ref, img_shape, box_tol):
    """Same labels, boxes within ``box_tol`` relative, scores close, mask
    IoU >= 0.99 after pasting as mmdet does."""
    assert len(ref) > 3, 'too few detections to compare'
    assert labels.tolist() == ref.labels.tolist()
    scale = ref.bboxes.abs().max()
    assert ((dets[:, :4] - ref.bboxes).abs().max() / scale) < box_tol
    assert torch.allclose(dets[:, 4], ref.scores, atol=1e-4)
    pasted = paste_masks(masks, dets[:, :4], *img_shape)
    ious = mask_iou(pasted, ref.masks)
    assert ious.min() >= 0.99, ious


def test_level_of_rois_matches_mmdet(detector):
    model, _ = detector
    extractor = model.roi_head.bbox_roi_extractor
    sizes = torch.tensor([1., 20, 55.9, 56, 111, 112, 224, 300, 448, 1000])
    boxes = torch.stack([torch.zeros(10), torch.zeros(10), sizes, sizes], 1)
    rois = torch.cat([torch.zeros(10, 1), boxes], 1)
    ref = extractor.map_roi_levels(rois, extractor.num_inputs)
    assert level_of_rois(boxes, 56.0, 4).tolist() == ref.tolist()


@pytest.mark.parametrize('case', CASES)
def test_graph_matches_mmdet_predict(detector, case):
    """The export-friendly PyTorch graph gives mmdet's detections, with
    padding (boxes clipped to img_shape, not to the input)."""
    model, _ = detector
    h, w, ih, iw = case
    image = torch.randn(1, 3, h, w, generator=torch.Generator()
                        .manual_seed(h + w))
    graph = export_graph(model)
    with torch.no_grad():
        dets, labels, masks = graph(image, torch.tensor([ih, iw],
                                                        dtype=torch.float32))
    assert dets.shape[0] == 1 and dets.shape[2] == 5
    assert masks.shape[2:] == (28, 28)
    _compare(dets[0], labels[0], masks[0], _reference(model, image, (ih, iw)),
             (ih, iw), 1e-5)


@pytest.mark.slow
def test_onnx_file_is_standard_ops(det_file):
    model = onnx.load(det_file)
    ops = {(n.domain or 'ai.onnx', n.op_type) for n in model.graph.node}
    assert {d for d, _ in ops} == {'ai.onnx'}, ops
    names = {op for _, op in ops}
    assert {'NonMaxSuppression', 'RoiAlign', 'TopK', 'NonZero'} <= names
    assert [i.name for i in model.graph.input] == ['input', 'img_shape']
    assert [o.name for o in model.graph.output] == ['dets', 'labels',
                                                    'masks']


@pytest.mark.slow
@pytest.mark.parametrize('case', CASES)
def test_onnx_matches_mmdet_predict(detector, det_file, case):
    """One dynamic file, three input sizes (one it was exported at):
    same labels, boxes within 1e-3 relative, mask IoU >= 0.99."""
    model, cfg = detector
    h, w, ih, iw = case
    image = torch.randn(1, 3, h, w, generator=torch.Generator()
                        .manual_seed(h + w))
    session = OnnxDetector(det_file, cfg)
    dets, labels, masks = session.raw_outputs(image, (ih, iw))
    _compare(dets, labels, masks, _reference(model, image, (ih, iw)),
             (ih, iw), 1e-3)


@pytest.mark.slow
def test_onnx_detector_predict_matches_mmdet(detector, det_file):
    """Images in, DetDataSamples out: the config's test pipeline (resize
    to 128 keep-ratio), boxes in the original image, masks pasted at full
    resolution, as mmdet's test_step gives."""
    model, cfg = detector
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (75, 110, 3), dtype=np.uint8)
    session = OnnxDetector(det_file, cfg)
    ours = session.predict(image)[0]
    data = session._pipeline(True)(dict(img=image, img_id=0))
    with torch.no_grad():
        ref = model.test_step(dict(inputs=[data['inputs']],
                                   data_samples=[data['data_samples']]))[0]
    assert ours.ori_shape == ref.ori_shape == (75, 110)
    mine, theirs = ours.pred_instances, ref.pred_instances
    assert len(theirs) > 3
    assert mine.labels.tolist() == theirs.labels.tolist()
    assert ((mine.bboxes - theirs.bboxes).abs().max()
            / theirs.bboxes.abs().max()) < 1e-3
    assert mine.masks.shape == theirs.masks.shape == (len(theirs), 75, 110)
    assert mask_iou(mine.masks, theirs.masks).min() >= 0.99


def test_errors(detector, tmp_path):
    model, cfg = detector
    # a detector the graph does not reproduce
    faster = copy.deepcopy(cfg)
    with pytest.raises(DeployError) as err:
        model.roi_head.mask_head.class_agnostic = True
        try:
            check_mask_rcnn(model)
        finally:
            model.roi_head.mask_head.class_agnostic = False
    assert 'does not handle mask_head FCNMaskHead with class_agnostic' \
        in str(err.value)
    assert 'it supports mask_head FCNMaskHead' in str(err.value)
    faster.model.type = 'FasterRCNN'
    from mmvheat.deployment import build_deploy_model
    for key in ('mask_head', 'mask_roi_extractor'):
        faster.model.roi_head.pop(key)
    with pytest.raises(DeployError, match='does not handle detector '
                       'FasterRCNN; it supports detector MaskRCNN'):
        MaskRCNNGraph(build_deploy_model(faster))
    # a file of another task than the config
    with pytest.raises(DeployError, match='is a whole-detector .Mask R-CNN. '
                       'export but the config is a segmentor config'):
        seg = copy.deepcopy(cfg)
        seg.default_scope = 'mmseg'
        check_file_fits_config({'mmvheat.task': 'detector'}, seg, 'x.onnx')
    with pytest.raises(DeployError, match='batch 1'):
        export_onnx(export_graph(model), str(tmp_path / 'x.onnx'), (64, 64),
                    batch=2, dynamic=False)


@pytest.mark.slow
def test_runtime_errors(detector, det_file):
    _, cfg = detector
    with pytest.raises(DeployError, match='predicts 4 classes but the '
                       "config's model has 80"):
        other = copy.deepcopy(cfg)
        other.model.roi_head.bbox_head.num_classes = 80
        OnnxDetector(det_file, other)
    session = OnnxDetector(det_file, cfg)
    with pytest.raises(DeployError, match=r'image 0 size \(20, 50\) is too '
                       'small: vHeat needs H and W >= 32'):
        session.predict(np.zeros((20, 50, 3), np.uint8))
    with pytest.raises(DeployError, match='one image at a time'):
        session.raw_outputs(torch.zeros(2, 3, 64, 64), (64, 64))


@pytest.mark.slow
def test_cli_whole_detector_and_features_only(tmp_path):
    """pytorch2onnx.py on the demo Mask R-CNN: the whole detector by
    default (--verify compares detections at 3 sizes), the FPN maps with
    --features-only."""
    import os
    import subprocess
    import sys

    from helpers.detection import DEMO_DET_CONFIG
    from helpers.paths import REPO_ROOT
    tool = os.path.join(REPO_ROOT, 'tools', 'deployment', 'pytorch2onnx.py')
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)

    def run(*args):
        return subprocess.run([sys.executable, tool, DEMO_DET_CONFIG, *args],
                              capture_output=True, text=True, env=env,
                              cwd=REPO_ROOT)

    whole = str(tmp_path / 'whole.onnx')
    res = run('--out', whole, '--dynamic', '--verify', '--shape', '96', '96')
    assert res.returncode == 0, res.stderr[-3000:]
    assert '(detector, dynamic H/W, batch 1, opset 18' in res.stdout
    assert 'OK tolerance 0.0001' in res.stdout
    assert [o.name for o in onnx.load(whole).graph.output] == [
        'dets', 'labels', 'masks']
    feats = str(tmp_path / 'fpn.onnx')
    res = run('--out', feats, '--dynamic', '--features-only', '--verify',
              '--shape', '64', '64')
    assert res.returncode == 0, res.stderr[-3000:]
    assert [o.name for o in onnx.load(feats).graph.output] == [
        f'feat{i}' for i in range(5)]
    res = run('--out', feats, '--features-only', '--backbone-only')
    assert res.returncode == 2 and 'not allowed with' in res.stderr


@pytest.mark.slow
def test_normalisation_in_graph_with_padding(detector, tmp_path):
    """A --normalize file takes raw pixels: OnnxDetector turns the padded,
    normalised batch back into raw pixels (padding = the mean), and the
    detections equal mmdet's on an image padded from 87 to 96 rows."""
    from mmvheat.deployment import metadata_for, preprocess_of, task_metadata
    model, cfg = detector
    graph = export_graph(model, normalize=True)
    path = str(tmp_path / 'norm.onnx')
    export_onnx(graph, path, (128, 128), dynamic=True,
                metadata={**metadata_for(True, preprocess_of(model)),
                          **task_metadata(model, graph)})
    session = OnnxDetector(path, cfg)
    assert session.normalize_in_graph
    image = np.random.default_rng(1).integers(0, 255, (75, 110, 3),
                                              dtype=np.uint8)
    ours = session.predict(image)[0]
    data = session._pipeline(True)(dict(img=image, img_id=0))
    with torch.no_grad():
        ref = model.test_step(dict(inputs=[data['inputs']],
                                   data_samples=[data['data_samples']]))[0]
    assert ours.img_shape == (87, 128)
    mine, theirs = ours.pred_instances, ref.pred_instances
    assert len(theirs) > 3
    assert mine.labels.tolist() == theirs.labels.tolist()
    assert ((mine.bboxes - theirs.bboxes).abs().max()
            / theirs.bboxes.abs().max()) < 1e-3
    assert mask_iou(mine.masks, theirs.masks).min() >= 0.99
