"""ONNX sessions know their input: preprocess() from the file's metadata
(and the config's test pipeline), integer and NaN/inf inputs refused.

The demo classifier (reduced vHeat, 4 classes) exported at a fixed 64x64,
once without and once with the normalisation in the graph."""
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config

from helpers.paths import REPO_ROOT
from mmvheat.deployment import (
    DeployError,
    OnnxClassifier,
    build_deploy_model,
    export_graph,
    export_onnx,
    file_preprocessing,
    metadata_for,
    preprocess,
    preprocess_of,
)

CLS_CONFIG = os.path.join(REPO_ROOT, 'configs', 'demo',
                          'vheat-demo_4xb16_shapes-cls.py')


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    model = build_deploy_model(Config.fromfile(CLS_CONFIG))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def export(model, folder, normalize):
    path = str(folder / f'cls_norm{int(normalize)}.onnx')
    export_onnx(export_graph(model, (64, 64), normalize), path, (64, 64),
                batch=2, dynamic=False,
                metadata=metadata_for(normalize, preprocess_of(model)))
    return OnnxClassifier(path)


@pytest.fixture(scope='module')
def session(model, tmp_path_factory):
    """The demo classifier, fixed 2x3x64x64, normalised input."""
    return export(model, tmp_path_factory.mktemp('pre'), False)


@pytest.fixture(scope='module')
def raw_session(model, tmp_path_factory):
    """The same with the normalisation in the graph (raw pixels in)."""
    return export(model, tmp_path_factory.mktemp('pre'), True)


def images(n=2, size=(64, 64), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            for _ in range(n)]


def test_raw_pixels_refused_for_a_normalised_input_file(session):
    """Reproduction 5: uint8 pixels into a file that expects normalised
    floats are an error naming the helper (they predicted wrong labels)."""
    raw = np.stack(images()).transpose(0, 3, 1, 2)
    for batch in (raw, torch.from_numpy(raw), raw.astype(np.int64)):
        with pytest.raises(DeployError) as info:
            session.predict(batch)
        msg = str(info.value)
        assert 'expects normalised float images' in msg
        assert 'mmvheat.deployment.preprocess(images, session)' in msg


def test_nan_and_inf_are_errors(session):
    x = torch.randn(2, 3, 64, 64)
    x[0, 0, :2, :3] = float('nan')
    x[1, 2, 5, 5] = float('inf')
    with pytest.raises(DeployError, match=r'the input holds 6 NaN and 1 '
                       r'inf values \(of 24576\)'):
        session(x)


def test_preprocess_matches_the_models_data_preprocessor(model, session):
    """preprocess() gives what the model's own preprocessor gives (BGR ->
    RGB, mean/std from the file), and the file's output equals the model's
    on it."""
    imgs = images()
    batch = preprocess(imgs, session)
    assert batch.dtype == np.float32 and batch.shape == (2, 3, 64, 64)
    inputs = [torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1)))
              for i in imgs]
    ref = model.data_preprocessor(dict(inputs=inputs), False)['inputs']
    np.testing.assert_allclose(batch, ref.numpy(), rtol=0, atol=1e-5)
    with torch.no_grad():
        logits = model(ref, mode='tensor')
    torch.testing.assert_close(session(batch), logits, rtol=1e-4,
                               atol=1e-4)
    # RGB arrays give the same batch
    rgb = [i[..., ::-1] for i in imgs]
    np.testing.assert_array_equal(
        preprocess(rgb, session, channel_order='rgb'), batch)


@pytest.mark.slow
def test_normalise_in_graph_file_takes_raw_pixels(session, raw_session):
    """The file with the normalisation inside: uint8 accepted, NaN still
    refused, preprocess() gives raw float pixels, same prediction."""
    imgs = images()
    raw = np.stack(imgs).transpose(0, 3, 1, 2)
    assert raw_session.predict(raw)['pred_score'].shape == (2, 4)
    pixels = preprocess(imgs, raw_session)
    np.testing.assert_array_equal(pixels, raw.astype(np.float32))
    torch.testing.assert_close(raw_session(pixels),
                               session(preprocess(imgs, session)),
                               rtol=1e-4, atol=1e-4)
    bad = pixels.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DeployError, match='1 NaN and 0 inf'):
        raw_session(bad)


def test_fixed_file_size_paths_and_padding(session, tmp_path):
    import cv2
    big = images(1, (80, 100))[0]
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, big)
    # a fixed-size file without a config: resized to its size
    out = preprocess([path, path], session)
    assert out.shape == (2, 3, 64, 64)
    assert session.predict(out)['pred_label'].shape == (2, )
    # a dynamic file (metadata only): sizes kept, the batch padded
    meta = dict(session.metadata)
    meta['mmvheat.dynamic'] = 'true'
    batch, shapes = preprocess([big, images(1, (50, 70))[0]], meta,
                               size_divisor=32, return_shapes=True)
    assert shapes == [(80, 100), (50, 70)]
    assert batch.shape == (2, 3, 96, 128)
    assert (batch[1, :, 50:] == 0).all() and (batch[1, :, :, 70:] == 0).all()
    spec = file_preprocessing(session)
    assert spec['bgr_to_rgb'] and spec['size'] == (64, 64)
    assert spec['mean'] == pytest.approx([123.675, 116.28, 103.53])


def test_config_test_pipeline_is_applied(session):
    """With the config, its test pipeline runs: the ImageNet config's
    ResizeEdge(256) + CenterCrop(224)."""
    cfg = os.path.join(REPO_ROOT, 'configs', 'classification',
                       'vheat-tiny_16xb128_in1k.py')
    meta = dict(session.metadata)
    meta['mmvheat.dynamic'] = 'true'
    out = preprocess(images(1, (300, 400)), meta, config=cfg)
    assert out.shape == (1, 3, 224, 224)
    with pytest.raises(ValueError, match='channel_order'):
        preprocess(images(1), meta, channel_order='bgra')
