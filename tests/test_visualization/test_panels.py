"""The demo figure's panels: colours only where they mean something, text
drawn at the output resolution."""
import numpy as np
import pytest

from mmvheat.analysis.visualization.panels import (
    IGNORE_INDEX,
    classification_panel,
    legend,
    segmentation_panel,
    upscale,
)

PALETTE = [[220, 40, 40], [40, 200, 40]]


def scene():
    """A 16x16 grey image: left half unlabelled, right half class 1; the
    prediction says class 1 everywhere, confident only in the bottom half."""
    image = np.full((16, 16, 3), 100, np.uint8)
    gt = np.full((16, 16), IGNORE_INDEX)
    gt[:, 8:] = 1
    pred = np.ones((16, 16), np.int64)
    conf = np.full((16, 16), 0.3, np.float32)
    conf[8:] = 0.9
    return image, gt, pred, conf


def test_segmentation_panel_colours_labelled_confident_pixels_only():
    image, gt, pred, conf = scene()
    panel = segmentation_panel(image, gt, pred, conf, PALETTE, height=64)
    assert panel.shape == (64, 2 * 64 + 8, 3)
    left, right = panel[:, :64], panel[:, 68:132]
    dimmed = int(100 * 0.45)
    green_bgr = np.array([40, 200, 40]) * 0.65 + 100 * 0.35
    # below the caption banner: rows 40+
    assert (left[40:, :32] == dimmed).all()  # "other": not coloured
    np.testing.assert_allclose(left[40:, 32:], np.broadcast_to(
        green_bgr, left[40:, 32:].shape), atol=1)
    assert (right[40:, :32] == dimmed).all()  # unlabelled
    np.testing.assert_allclose(right[40:, 32:], np.broadcast_to(
        green_bgr, right[40:, 32:].shape), atol=1)  # confident
    assert (right[28:32, 32:] == dimmed).all()  # labelled, not confident
    assert (panel[:, 64:68] == 255).all()  # white gap


def test_segmentation_panel_rejects_mismatched_maps():
    image, gt, pred, conf = scene()
    with pytest.raises(ValueError, match=r'must share H, W'):
        segmentation_panel(image, gt[:8], pred, conf, PALETTE)


def test_classification_panel_text_at_output_resolution():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)
    right = classification_panel(image, 'circle', 'circle', 0.97, height=256)
    wrong = classification_panel(image, 'circle', 'square', 0.61, height=256)
    assert right.shape == wrong.shape == (256, 192 + 4, 3)
    plain = upscale(image, 256)
    # the caption is drawn on the 256-px image: outside its banner the
    # panel is the plain upscaled image, inside it the text is sharp (pure
    # white pixels exist at full resolution)
    assert np.array_equal(right[80:, :192], plain[80:])
    assert (right[:22, :192] >= 230).all(axis=-1).sum() > 40
    # the prediction line is green when right, red when wrong
    second_line = (slice(22, 48), slice(0, 192))
    assert (right[second_line][..., 1] > 200).sum() > \
        (wrong[second_line][..., 1] > 200).sum()
    assert (wrong[second_line][..., 2] > 240).sum() > 20


def test_legend_has_one_swatch_per_entry():
    strip = legend(['a', 'b'], PALETTE, width=300,
                   extra=[('dimmed', (90, 90, 90))])
    assert strip.shape == (30, 300, 3)
    row = strip[15]
    for bgr in ([40, 40, 220], [40, 200, 40], [90, 90, 90]):
        assert (row == bgr).all(axis=-1).sum() >= 16
