"""Images in, exactly what an exported ONNX file takes out.

A file from ``tools/deployment/pytorch2onnx.py`` records in its metadata
whether the normalisation is in the graph, the data preprocessor's mean and
std and whether it flips BGR to RGB (:func:`mmvheat.deployment.metadata_for`).
:func:`preprocess` reads those, so a user need not parse them:

* channel order: images come as OpenCV/mmcv load them (BGR) by default, or
  RGB with ``channel_order='rgb'``; they are brought to the pipeline's order
  (BGR, what ``LoadImageFromFile`` gives), then flipped to RGB when the
  model's preprocessor does;
* geometry: with ``config``, the config's test pipeline runs (its resize,
  crop or pad transforms, through the library's own registry, so the result
  matches ``tools/test.py``); without it, a fixed-size file gets its size
  (a plain bilinear resize) and a dynamic file the images as they are;
* normalisation: ``(x - mean) / std`` unless the file does it itself (then
  raw pixels go in, as float32);
* batching: images are padded at the bottom and right to the largest size
  in the batch (and to a multiple of the config preprocessor's
  ``pad_size_divisor``/``size_divisor``, or ``size_divisor``) with zeros
  after normalisation, as mmdet's and mmseg's preprocessors pad.

:func:`check_input_values` is the input check of the sessions
(:class:`~mmvheat.deployment.OnnxModel`): an integer array for a file that
expects normalised floats is an error naming :func:`preprocess`, and NaN or
inf values are always an error (with their count): they would give NaN
scores and label 0 without a word.
"""
import json
import os.path as osp
from typing import Any, List, Mapping, Optional, Sequence, Union

import numpy as np

from .models import DeployError
from .onnx_export import read_metadata

__all__ = ['preprocess', 'check_input_values', 'file_preprocessing']

Image = Union[str, np.ndarray, Any]


def file_preprocessing(model: Union[str, Mapping[str, str], Any]) -> dict:
    """What a file expects, from its metadata.

    Args:
        model: An :class:`~mmvheat.deployment.OnnxModel` (anything with a
            ``metadata`` dict), the ``.onnx`` path, or the metadata dict.

    Returns:
        dict: ``normalize_in_graph``, ``mean``, ``std``, ``bgr_to_rgb``,
        ``dynamic``, ``size`` (H, W of a fixed file, else None) and
        ``path``.
    """
    path = None
    if isinstance(model, str):
        path, meta = model, read_metadata(model)
    elif isinstance(model, Mapping):
        meta = dict(model)
    else:
        path, meta = getattr(model, 'path', None), dict(model.metadata)

    def get(key: str, default):
        value = meta.get(f'mmvheat.{key}')
        return default if value is None else json.loads(value)

    if 'mmvheat.mean' not in meta and not get('normalize_in_graph', False):
        raise DeployError(
            f'{path or "the file"} has no mean/std in its metadata (not '
            'written by tools/deployment/pytorch2onnx.py?): normalise the '
            'images yourself as the model\'s data preprocessor does')
    size = get('size', [])
    return dict(normalize_in_graph=bool(get('normalize_in_graph', False)),
                mean=[float(v) for v in get('mean', [0.0, 0.0, 0.0])],
                std=[float(v) for v in get('std', [1.0, 1.0, 1.0])],
                bgr_to_rgb=bool(get('bgr_to_rgb', False)),
                dynamic=bool(get('dynamic', True)),
                size=tuple(size) if size and not get('dynamic', True)
                else None,
                path=path)


def check_input_values(images: np.ndarray, normalize_in_graph: bool,
                       path: Optional[str] = None) -> None:
    """Refuse inputs a file would turn into silently wrong outputs.

    Args:
        images (np.ndarray): The (B, 3, H, W) batch, before any cast.
        normalize_in_graph (bool): Whether the file normalises itself (then
            raw integer pixels are fine).
        path (str, optional): The file, for messages.

    Raises:
        DeployError: Integer (or bool) pixels for a file that expects
            normalised floats, naming :func:`preprocess`; NaN or inf values,
            with their count.
    """
    name = path or 'this ONNX file'
    kind = images.dtype.kind
    if kind in 'biu' and not normalize_in_graph:
        raise DeployError(
            f'{name} expects normalised float images ((x - mean) / std, as '
            f'the model\'s data preprocessor makes them), got {images.dtype}'
            ' pixels. Use mmvheat.deployment.preprocess(images, session) '
            'to prepare raw images (it reads mean, std and channel order '
            'from the file), or export with --normalize to take raw pixels.')
    if kind == 'f' or kind == 'c':
        nan = int(np.isnan(images).sum())
        inf = int(np.isinf(images).sum())
        if nan or inf:
            raise DeployError(
                f'the input holds {nan} NaN and {inf} inf values (of '
                f'{images.size}); {name} would give NaN scores: check the '
                'images and their preprocessing')


def _read(image: Image, channel_order: str) -> np.ndarray:
    """One image as an (H, W, 3) array in BGR order."""
    if isinstance(image, str):
        import cv2
        if not osp.isfile(image):
            raise FileNotFoundError(f'image not found: {image}')
        array = cv2.imread(image, cv2.IMREAD_COLOR)
        if array is None:
            raise DeployError(f'could not read {image} as an image')
        return array  # OpenCV reads BGR
    if hasattr(image, 'detach'):  # a torch tensor
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise DeployError(f'expected (H, W, 3) images, got '
                          f'{tuple(array.shape)}')
    return array[..., ::-1] if channel_order == 'rgb' else array


def _as_list(images) -> List[Image]:
    if isinstance(images, str):
        return [images]
    if hasattr(images, 'detach'):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images)
        return [images]
    return list(images)


def _test_pipeline(config) -> tuple:
    """The config's test transforms without loading and packing, and its
    preprocessor's pad divisor."""
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    pipeline = cfg.get('test_pipeline')
    if pipeline is None:
        pipeline = cfg.test_dataloader.dataset.get('pipeline', [])
    skip = ('Load', 'Pack', 'TestTimeAug')
    kept = [t for t in pipeline
            if not str(t['type']).split('.')[-1].startswith(skip)]
    pre = dict(cfg.model.get('data_preprocessor') or
               cfg.get('data_preprocessor') or {})
    divisor = int(pre.get('pad_size_divisor') or pre.get('size_divisor')
                  or 1)
    return Compose(kept), divisor


def preprocess(images: Union[Image, Sequence[Image]],
               model: Union[str, Mapping[str, str], Any],
               config: Optional[Union[str, Any]] = None,
               channel_order: str = 'bgr',
               size_divisor: Optional[int] = None,
               return_shapes: bool = False):
    """Prepare images for an exported file (see the module's docstring).

    Args:
        images: One image or several: paths, (H, W, 3) arrays or tensors
            (uint8 pixels or floats on the 0-255 scale), or a (B, H, W, 3)
            array.
        model: The session (:class:`~mmvheat.deployment.OnnxModel`), the
            ``.onnx`` path, or its metadata.
        config (str | Config, optional): The config the file was exported
            from: its test pipeline resizes/crops/pads the images exactly
            as ``tools/test.py`` does. Defaults to None (see above).
        channel_order (str): 'bgr' (OpenCV, mmcv) or 'rgb' (PIL, skimage)
            for array inputs; paths are read with OpenCV. Defaults to 'bgr'.
        size_divisor (int, optional): Pad H and W to a multiple of this.
            Defaults to None: the config preprocessor's, else 1.
        return_shapes (bool): Also return each image's (H, W) before
            padding. Defaults to False.

    Returns:
        np.ndarray: The (B, 3, H, W) float32 batch (and the list of shapes
        with ``return_shapes``).
    """
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got "
                         f'{channel_order!r}')
    spec = file_preprocessing(model)
    pipeline, divisor = (None, 1)
    if config is not None:
        pipeline, divisor = _test_pipeline(config)
    if size_divisor is not None:
        divisor = int(size_divisor)
    out = []
    for image in _as_list(images):
        array = _read(image, channel_order)
        if pipeline is not None:
            h, w = array.shape[:2]
            results = pipeline(dict(img=np.ascontiguousarray(array),
                                    img_shape=(h, w), ori_shape=(h, w)))
            array = results['img']
        elif spec['size'] is not None and tuple(array.shape[:2]) != tuple(
                spec['size']):
            import cv2
            h, w = spec['size']
            array = cv2.resize(np.ascontiguousarray(array), (w, h),
                               interpolation=cv2.INTER_LINEAR)
        array = np.asarray(array, dtype=np.float32)
        if not spec['normalize_in_graph']:
            if spec['bgr_to_rgb']:
                array = array[..., ::-1]
            array = (array - np.asarray(spec['mean'], np.float32)) \
                / np.asarray(spec['std'], np.float32)
        out.append(np.ascontiguousarray(array.transpose(2, 0, 1)))
    if not out:
        raise DeployError('no images given')
    shapes = [tuple(a.shape[1:]) for a in out]
    height = -(-max(s[0] for s in shapes) // divisor) * divisor
    width = -(-max(s[1] for s in shapes) // divisor) * divisor
    batch = np.zeros((len(out), 3, height, width), np.float32)
    for i, array in enumerate(out):
        batch[i, :, :array.shape[1], :array.shape[2]] = array
    check_input_values(batch, True, spec['path'])
    return (batch, shapes) if return_shapes else batch
