"""Issue 9: visualising the heat (impulse responses, conductivity, features,
effective receptive fields) and tools/analysis_tools/visualize_heat.py."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch

from mmvheat.analysis.visualization import (
    area_ratio,
    block_impulse_response,
    channel_norm,
    conductivity,
    default_block_ids,
    effective_receptive_field,
    grid_points,
    heat_kernel,
    image_to_tensor,
    load_image,
    parse_block_ids,
    pca_rgb,
    reduce_channels,
    spatial_spread,
    stage_features,
)
from mmvheat.models import VHeat

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CFG = osp.join(ROOT, 'configs/demo/vheat-demo_4xb16_shapes-cls.py')
SMALL = dict(depths=[1, 1, 1, 1], dims=8)


def load_tool():
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'visualize_heat.py')
    spec = importlib.util.spec_from_file_location('visualize_heat', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_model(**kwargs):
    return VHeat(arch=SMALL,
                 img_size=64,
                 out_indices=(0, 1, 2, 3),
                 drop_path_rate=0.,
                 **kwargs).eval()


def make_image(path, size=(72, 96)):
    """A drawn test image: gradient background, a disc and a bar."""
    from PIL import Image
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h,
                    np.full_like(xx, 90)], -1).astype(np.uint8)
    img[(yy - h // 2)**2 + (xx - w // 3)**2 < (h // 5)**2] = (230, 40, 40)
    img[h // 6:h // 3, w // 2:w - 5] = (20, 200, 60)
    Image.fromarray(img).save(path)
    return str(path)


# ---------------------------------------------------------------- the filter
def test_impulse_response_k0_is_identity():
    k = torch.zeros(9, 11, 3, dtype=torch.float64)
    points = [(4, 5), (0, 0), (8, 10), (2, 9)]
    resp = heat_kernel(k, points)
    assert resp.shape == (4, 9, 11, 3)
    for p, (y, x) in enumerate(points):
        expected = torch.zeros(9, 11, 3, dtype=torch.float64)
        expected[y, x] = 1
        torch.testing.assert_close(resp[p], expected, atol=1e-10, rtol=0)


def test_larger_k_spreads_more():
    size, centre = (33, 33), (16, 16)
    spreads = []
    for value in [0., 0.25, 0.5, 1., 2., 4., 8.]:
        k = torch.full((*size, 2), value, dtype=torch.float64)
        resp = reduce_channels(heat_kernel(k, [centre]))[0]
        spreads.append(spatial_spread(resp, centre))
    assert spreads[0] == pytest.approx(0, abs=1e-3)
    assert all(b > a for a, b in zip(spreads, spreads[1:])), spreads
    # A Gaussian heat kernel: variance 2k per axis, 4k in 2-D.
    assert spreads[-2]**2 == pytest.approx(16, rel=0.05)


def test_response_sum_is_one_for_any_k():
    torch.manual_seed(0)
    for h, w in [(7, 7), (6, 13), (1, 5)]:
        k = torch.rand(h, w, 4, dtype=torch.float64) * 10
        points = [(0, 0), (h - 1, w - 1), (h // 2, w // 3)]
        resp = heat_kernel(k, points)
        torch.testing.assert_close(resp.sum(dim=(1, 2)),
                                   torch.ones(3, 4, dtype=torch.float64),
                                   atol=1e-9,
                                   rtol=0)


def test_block_impulse_response_and_conductivity_on_real_blocks():
    model = small_model()
    with torch.no_grad():  # make one block conduct visibly
        model.layers[1][0].op.to_k[0].bias.fill_(2.)
    cells = grid_points([(0.5, 0.5), (0., 0.), (1., 1.)], (5, 7))
    assert cells == [(2, 3), (0, 0), (4, 6)]
    for stage, size in [(0, None), (1, (5, 7)), (3, (3, 2))]:
        resp = block_impulse_response(model, stage, 0, [(0, 0)], size)
        grid = size or tuple(model.freq_embed[stage].shape[:2])
        assert resp.shape == (1, *grid, model.dims[stage])
        assert torch.isfinite(resp).all()
        torch.testing.assert_close(resp.sum(dim=(1, 2)),
                                   torch.ones(1, model.dims[stage]),
                                   atol=1e-4,
                                   rtol=0)
        k = conductivity(model, stage, 0, size)
        assert k.shape == (*grid, model.dims[stage]) and (k >= 0).all()
    wide = reduce_channels(
        block_impulse_response(model, 1, 0, cells[:1], (5, 7)))[0]
    assert spatial_spread(wide, cells[0]) > 0.5
    assert reduce_channels(k, [0, 2]).shape == k.shape[:2]
    with pytest.raises(ValueError, match=r'channels 0\.\.63'):
        reduce_channels(k, [64])  # stage 3 has 8 * 2^3 channels


def test_parse_block_ids():
    depths = [2, 2, 6, 2]
    assert parse_block_ids(['0.0', '2.5', '3.1', '2.5'], depths) == [(0, 0),
                                                                     (2, 5),
                                                                     (3, 1)]
    assert default_block_ids(depths) == [(0, 1), (1, 1), (2, 5), (3, 1)]
    with pytest.raises(ValueError, match=r'stage 2 has blocks 0\.\.5'):
        parse_block_ids(['2.6'], depths)
    with pytest.raises(ValueError, match=r'valid stages are 0\.\.3'):
        parse_block_ids(['4.0'], depths)
    with pytest.raises(ValueError, match='STAGE.BLOCK'):
        parse_block_ids(['2'], depths)


# --------------------------------------------------- features, ERF, image
def test_features_and_erf_shapes(tmp_path):
    model = small_model()
    image = load_image(make_image(tmp_path / 'img.png', (50, 70)))
    assert image.shape == (50, 70, 3) and image.dtype == np.uint8
    x = image_to_tensor(image)
    feats = stage_features(model, x)
    sizes = [(13, 18), (7, 9), (4, 5), (2, 3)]
    for i, feat in enumerate(feats):
        assert feat.shape == (model.dims[i], *sizes[i])
        assert channel_norm(feat).shape == sizes[i]
        rgb = pca_rgb(feat)
        assert rgb.shape == (*sizes[i], 3)
        assert rgb.min() >= 0 and rgb.max() <= 1 and rgb.std() > 0
    raw = stage_features(model, x, before_norm=True)
    for i, feat in enumerate(raw):  # the output norm makes norms constant
        assert feat.shape == feats[i].shape
        assert channel_norm(feat).std() > 10 * channel_norm(feats[i]).std()
    erfs = effective_receptive_field(model, x, (0.5, 0.5))
    assert len(erfs) == 4
    for i, (erf, cell, size) in enumerate(erfs):
        assert erf.shape == (50, 70) and size == sizes[i]
        assert cell == (sizes[i][0] // 2, sizes[i][1] // 2)
        assert torch.isfinite(erf).all() and erf.sum() > 0
        assert 0 < area_ratio(erf, 0.5) <= area_ratio(erf, 0.9) <= 1


def test_load_image_resizing(tmp_path):
    path = make_image(tmp_path / 'img.png', (40, 80))
    assert load_image(path, 32).shape == (32, 64, 3)
    assert load_image(path, [0]).shape == (40, 80, 3)
    assert load_image(path, (30, 50)).shape == (30, 50, 3)
    with pytest.raises(FileNotFoundError, match='image file not found'):
        load_image(str(tmp_path / 'missing.png'))


# --------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_writes_figures(tmp_path):
    from PIL import Image
    tool = load_tool()
    img = make_image(tmp_path / 'img.png')
    out = tmp_path / 'out'
    written = tool.main([
        DEMO_CFG, '--img', img, '--out-dir',
        str(out), '--shape', '48', '--blocks', '0.0', '2.1',
        '--erf-compare', 'swin', '--dpi', '50', '--impulse-scale', 'log',
        '--device', 'cpu', '--cfg-options', 'model.backbone.img_size=64'
    ])
    assert sorted(written) == sorted(tool.FIGURES)
    for name in tool.FIGURES:
        path = out / f'heat_{name}.png'
        assert path.is_file()
        pixels = np.asarray(Image.open(path).convert('RGB'))
        assert pixels.shape[0] > 50 and pixels.shape[1] > 50
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10


@pytest.mark.parametrize('args, message', [
    (['--img', 'no/such/image.png'], 'image file not found'),
    (['--blocks', '2.5'], 'stage 2 has blocks 0..1'),
    (['--blocks', '4.0'], 'valid stages are 0..3'),
    (['--channels', '16'], 'channels 0..15'),
])
def test_cli_clear_errors(tmp_path, capsys, args, message):
    tool = load_tool()
    argv = [
        DEMO_CFG, '--img',
        make_image(tmp_path / 'img.png'), '--out-dir',
        str(tmp_path / 'out')
    ] + args
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
