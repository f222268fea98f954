"""Prediction panels for the demo figure, drawn at the output resolution.

Images are upscaled first and text is drawn afterwards, so captions stay
sharp at 100% zoom whatever the input size. Segmentation panels colour only
the pixels that count: labelled in the ground truth (ADE20K's "other", label
0, is ignored by ``reduce_zero_label`` and never learned) and, for the
prediction, confident; everything else shows the dimmed image.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

IGNORE_INDEX = 255
# BGR colour of the legend swatch for pixels that are not coloured.
DIMMED = (90, 90, 90)


def _cv2():
    import cv2
    return cv2


def upscale(image: np.ndarray, height: int) -> np.ndarray:
    """Resize a BGR image (bicubic) or a label map (nearest) to ``height``
    rows, keeping the aspect ratio."""
    cv2 = _cv2()
    h, w = image.shape[:2]
    size = (max(1, round(w * height / h)), height)
    labels = image.ndim == 2
    out = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST
                     if labels else cv2.INTER_CUBIC)
    return out


def put_caption(image: np.ndarray, lines: Sequence[str],
                colours: Optional[Sequence[Tuple[int, int, int]]] = None,
                scale: float = 0.6) -> np.ndarray:
    """Write ``lines`` in the top-left corner on a dark banner (in place)."""
    cv2 = _cv2()
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1 + int(scale >= 0.8)
    colours = colours or [(255, 255, 255)] * len(lines)
    sizes = [cv2.getTextSize(t, font, scale, thick)[0] for t in lines]
    line_h = max(s[1] for s in sizes) + 8
    width = min(image.shape[1], max(s[0] for s in sizes) + 10)
    banner = image[:line_h * len(lines) + 4, :width]
    banner[:] = (banner * 0.35).astype(np.uint8)
    for i, (text, colour) in enumerate(zip(lines, colours)):
        cv2.putText(image, text, (5, (i + 1) * line_h - 3), font, scale,
                    colour, thick, cv2.LINE_AA)
    return image


def _overlay(image: np.ndarray, labels: np.ndarray, mask: np.ndarray,
             palette: np.ndarray) -> np.ndarray:
    """Blend class colours over ``image`` where ``mask``; dim elsewhere."""
    out = (image.astype(np.float32) * 0.45).astype(np.uint8)
    idx = np.clip(labels, 0, len(palette) - 1)
    blend = image.astype(np.float32) * 0.35 + palette[idx] * 0.65
    out[mask] = blend[mask].astype(np.uint8)
    return out


def segmentation_panel(image: np.ndarray,
                       gt: np.ndarray,
                       pred: np.ndarray,
                       confidence: np.ndarray,
                       palette: Sequence[Sequence[int]],
                       height: int = 256,
                       min_confidence: float = 0.5) -> np.ndarray:
    """Ground truth beside prediction for one image.

    Args:
        image (np.ndarray): BGR image, (H, W, 3) uint8.
        gt (np.ndarray): Labels (H, W) after ``reduce_zero_label``:
            ``IGNORE_INDEX`` marks unlabelled pixels.
        pred (np.ndarray): Predicted labels (H, W).
        confidence (np.ndarray): Softmax probability of ``pred`` (H, W).
        palette (Sequence): RGB colour per class (mmseg's ``metainfo``).
        height (int): Output height in pixels. Defaults to 256.
        min_confidence (float): Predictions below it are not coloured.
            Defaults to 0.5.

    Returns:
        np.ndarray: (height, 2 * width, 3) BGR panel.
    """
    if not gt.shape == pred.shape == confidence.shape == image.shape[:2]:
        raise ValueError(
            f'image {image.shape[:2]}, ground truth {gt.shape}, prediction '
            f'{pred.shape} and confidence {confidence.shape} must share H, W')
    bgr = np.asarray([c[::-1] for c in palette], np.float32)
    big = upscale(image, height)
    gt, pred = upscale(gt.astype(np.uint8), height), upscale(
        pred.astype(np.uint8), height)
    confidence = upscale(confidence.astype(np.float32), height)
    labelled = gt != IGNORE_INDEX
    left = _overlay(big, gt, labelled, bgr)
    right = _overlay(big, pred, labelled & (confidence >= min_confidence),
                     bgr)
    put_caption(left, ['ground truth'])
    correct = (pred == gt)[labelled].mean() if labelled.any() else 1.0
    put_caption(right, [f'prediction ({100 * correct:.0f}% correct)'])
    gap = np.full((height, 4, 3), 255, np.uint8)
    return np.concatenate([left, gap, right, gap], axis=1)


def classification_panel(image: np.ndarray,
                         truth: str,
                         prediction: str,
                         score: float,
                         height: int = 256) -> np.ndarray:
    """The image at ``height`` rows with truth and prediction written on it
    (green when they agree, red otherwise).

    Args:
        image (np.ndarray): BGR image, (H, W, 3) uint8.
        truth (str): Ground-truth class name.
        prediction (str): Predicted class name.
        score (float): Predicted probability of ``prediction``.
        height (int): Output height in pixels. Defaults to 256.

    Returns:
        np.ndarray: (height, width, 3) BGR panel.
    """
    big = upscale(image, height)
    colour = (90, 230, 90) if truth == prediction else (80, 80, 255)
    put_caption(big, [f'truth: {truth}', f'pred: {prediction} {score:.2f}'],
                [(255, 255, 255), colour])
    return np.concatenate([big, np.full((height, 4, 3), 255, np.uint8)], 1)


def legend(names: Sequence[str], palette: Sequence[Sequence[int]],
           width: int, height: int = 30,
           extra: Sequence[Tuple[str, Tuple[int, int, int]]] = ()
           ) -> np.ndarray:
    """A white strip with one colour swatch per class (RGB ``palette``)
    and ``extra`` (name, BGR colour) entries, left to right."""
    cv2 = _cv2()
    strip = np.full((height, width, 3), 255, np.uint8)
    entries = [(n, tuple(int(v) for v in c[::-1]))
               for n, c in zip(names, palette)] + list(extra)
    x = 5
    for name, colour in entries:
        cv2.rectangle(strip, (x, 7), (x + 16, height - 7), colour, -1)
        cv2.putText(strip, name, (x + 22, height - 9),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        x += 40 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                                  1)[0][0]
    return strip
