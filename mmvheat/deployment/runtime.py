"""Running exported files in ONNX Runtime with the PyTorch models'
interfaces.

* :class:`OnnxBackbone`: images -> tuple of feature maps, like
  ``VHeat.forward`` (or the FPN levels of a detector's export);
* :class:`OnnxClassifier`: images -> logits, and :meth:`predict` ->
  mmpretrain-like ``pred_score`` / ``pred_label``;
* :class:`OnnxSegmentor`: images -> whole-image logits, :meth:`predict` ->
  label maps; :meth:`OnnxSegmentor.inference` runs the config's test mode
  (whole image or mmseg's sliding window);
* :class:`OnnxDetector`: a whole Mask R-CNN export plus its config: images
  (or a test dataloader's batches) -> mmdet ``DetDataSample``s with boxes in
  the original image and masks pasted at full resolution.

Images are (B, 3, H, W) float tensors or arrays, H and W >= 32. A file
exported with the normalisation inside takes raw pixels in the dataset's
channel order; one without it takes what the model's data preprocessor
produces (normalised RGB). ``normalize_in_graph`` tells which (from the
file's metadata); :func:`mmvheat.deployment.preprocess` prepares raw images
for either. Integer pixels for a file that expects normalised floats, and
NaN or inf values, are refused (:class:`DeployError`).
"""
import copy
import json
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .models import DeployError
from .onnx_export import check_size, read_metadata
from .preprocess import check_input_values

__all__ = ['OnnxModel', 'OnnxBackbone', 'OnnxClassifier', 'OnnxSegmentor',
           'OnnxDetector', 'check_file_fits_config', 'paste_masks',
           'slide_windows']

ArrayLike = Union[torch.Tensor, np.ndarray]


class OnnxModel:
    """An ONNX Runtime session over a file from ``pytorch2onnx.py``.

    Args:
        path (str): The ``.onnx`` file.
        providers (Sequence[str], optional): ONNX Runtime execution
            providers. Defaults to ``['CPUExecutionProvider']``.
        threads (int, optional): Intra-op threads. Defaults to None (ONNX
            Runtime decides).
    """

    task: Optional[str] = None

    def __init__(self, path: str,
                 providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None) -> None:
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.path = path
        self.session = ort.InferenceSession(
            path, options, providers=list(providers
                                          or ['CPUExecutionProvider']))
        self.metadata: Dict[str, str] = read_metadata(path)
        task = self.metadata.get('mmvheat.task')
        if self.task is not None and task is not None and task != self.task:
            raise DeployError(f'{path} is a {_task_words(task)} export; '
                              f'{type(self).__name__} needs a '
                              f'{_task_words(self.task)} export')
        self.input_name = self.session.get_inputs()[0].name
        self.dynamic = json.loads(self.metadata.get('mmvheat.dynamic',
                                                    'true'))
        self.size = tuple(json.loads(self.metadata.get('mmvheat.size',
                                                       '[]')))
        self.normalize_in_graph = json.loads(
            self.metadata.get('mmvheat.normalize_in_graph', 'false'))

    def _check(self, images: ArrayLike) -> np.ndarray:
        if torch.is_tensor(images):
            images = images.detach().cpu().numpy()
        # integer pixels for a normalised-input file, NaN/inf: errors
        images = np.asarray(images)
        check_input_values(images, self.normalize_in_graph, self.path)
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise DeployError(f'expected images (B, 3, H, W), got '
                              f'{tuple(images.shape)}')
        check_size(images.shape[2:])
        if not self.dynamic and tuple(images.shape[2:]) != self.size:
            raise DeployError(
                f'{self.path} was exported for {self.size} inputs only (a '
                f'fixed-size file), got {tuple(images.shape[2:])}; export '
                'with --dynamic for any size')
        return images

    def run(self, images: ArrayLike) -> Tuple[torch.Tensor, ...]:
        """All outputs of the graph for ``images``, as tensors."""
        outs = self.session.run(None, {self.input_name: self._check(images)})
        return tuple(torch.from_numpy(o) for o in outs)

    __call__ = run


def _task_words(task: str) -> str:
    return {'neck': 'detector backbone + neck (--features-only)',
            'detector': 'whole-detector (Mask R-CNN)'}.get(task, task)


def check_file_fits_config(metadata: Dict[str, str], cfg,
                           path: str = 'the file') -> str:
    """The task of ``cfg`` when the ONNX file's metadata says it was
    exported for that task (and, when recorded, the same number of
    classes); a :class:`DeployError` that names both otherwise."""
    from .models import task_of
    task = task_of(cfg)
    file_task = metadata.get('mmvheat.task')
    if file_task is not None and file_task != task:
        raise DeployError(
            f'{path} is a {_task_words(file_task)} export but the config is '
            f'a {task} config (default_scope {cfg.get("default_scope")!r}); '
            'give the config the file was exported from')
    classes = metadata.get('mmvheat.num_classes')
    if classes is not None:
        expected = _config_num_classes(cfg, task)
        if expected is not None and int(classes) != expected:
            raise DeployError(
                f'{path} predicts {classes} classes but the config\'s model '
                f'has {expected}: not the file of this config')
    return task


def _config_num_classes(cfg, task: str) -> Optional[int]:
    model = cfg.model
    try:
        if task == 'classifier':
            return int(model.head.num_classes)
        if task == 'segmentor':
            return int(model.decode_head.num_classes)
        return int(model.roi_head.bbox_head.num_classes)
    except (AttributeError, KeyError, TypeError):
        return None


def _build_from_config(cfg, part: dict):
    """Build a registry object of the config's library (its scope)."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.default_scope)
    return MODELS.build(copy.deepcopy(part))


def data_preprocessor_of(cfg):
    """The config's data preprocessor (the model's, or the top-level
    ``data_preprocessor``) as its library builds it."""
    from .models import task_of
    part = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor')
    if not part:
        raise DeployError('the config has no data_preprocessor (model.'
                          'data_preprocessor): cannot preprocess as the '
                          'model does')
    part = dict(part)
    # the models' own defaults when the config names no type
    part.setdefault('type', {
        'classifier': 'mmpretrain.ClsDataPreprocessor',
        'segmentor': 'mmseg.SegDataPreprocessor',
        'detector': 'mmdet.DetDataPreprocessor'}[task_of(cfg)])
    return _build_from_config(cfg, part).eval()


class OnnxBackbone(OnnxModel):
    """Feature maps: a tuple of (B, C_i, H_i, W_i) tensors, as the
    PyTorch backbone (or the detector's neck) returns."""


def _load_config(config):
    from mmengine.config import Config
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if not osp.isfile(str(config)):
        raise DeployError(f'config file not found: {config}')
    return Config.fromfile(str(config))


class _TaskSession(OnnxModel):
    """A session that may also hold the config it was exported from
    (checked against the file's metadata) and its data preprocessor, for
    :meth:`predict_batch` on a test dataloader's batches."""

    def __init__(self, path: str, config=None,
                 providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None) -> None:
        super().__init__(path, providers, threads)
        self.cfg = None
        self._preprocessor = None
        if config is not None:
            self.cfg = _load_config(config)
            check_file_fits_config(self.metadata, self.cfg, path)

    @property
    def preprocessor(self):
        """The config's data preprocessor (built on first use)."""
        if self.cfg is None:
            raise DeployError(f'{type(self).__name__} was made without a '
                              'config: give CONFIG to preprocess as the '
                              'model does')
        if self._preprocessor is None:
            self._preprocessor = data_preprocessor_of(self.cfg)
        return self._preprocessor

    def _network_input(self, inputs: torch.Tensor) -> torch.Tensor:
        """What the file takes, from the preprocessor's output (normalised
        RGB): unchanged, or back to raw pixels in the dataset's channel
        order when the file normalises inside (padding becomes the mean,
        which the graph normalises to the preprocessor's 0)."""
        if not self.normalize_in_graph:
            return inputs
        mean = torch.tensor(json.loads(self.metadata['mmvheat.mean']))
        std = torch.tensor(json.loads(self.metadata['mmvheat.std']))
        raw = inputs * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
        if json.loads(self.metadata.get('mmvheat.bgr_to_rgb', 'false')):
            raw = raw.flip(1)
        return raw


class OnnxClassifier(_TaskSession):
    """A classifier export: :meth:`__call__` gives the logits
    (B, num_classes), :meth:`predict` the scores and labels,
    :meth:`predict_batch` mmpretrain ``DataSample``s for a test
    dataloader's batch (needs ``config``).

    Args:
        path (str): The ``.onnx`` file.
        config (str | Config, optional): The config it was exported from.
        providers, threads: See :class:`OnnxModel`.
    """

    task = 'classifier'

    def __call__(self, images: ArrayLike) -> torch.Tensor:
        return self.run(images)[0]

    def predict(self, images: ArrayLike) -> Dict[str, torch.Tensor]:
        """``pred_score`` (softmax, (B, num_classes)) and ``pred_label``
        ((B, )), the fields of mmpretrain's ``DataSample``."""
        scores = self(images).softmax(dim=1)
        return dict(pred_score=scores, pred_label=scores.argmax(dim=1))

    def predict_batch(self, data: dict) -> list:
        """mmpretrain's ``predict`` on a dataloader batch: the data samples
        with ``pred_score`` and ``pred_label`` set."""
        data = self.preprocessor(data, False)
        pred = self.predict(self._network_input(data['inputs']))
        samples = data['data_samples']
        for i, sample in enumerate(samples):
            sample.set_pred_score(pred['pred_score'][i]).set_pred_label(
                pred['pred_label'][i:i + 1])
        return samples


def slide_windows(height: int, width: int, crop: Sequence[int],
                  stride: Sequence[int]) -> List[Tuple[int, int, int, int]]:
    """(y1, y2, x1, x2) of mmseg's ``slide_inference`` windows: a grid of
    ``stride`` steps, the last window of a row/column moved back to end at
    the border, windows never larger than the image."""
    (h_crop, w_crop), (h_stride, w_stride) = crop, stride
    rows = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    cols = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    windows = []
    for r in range(rows):
        for c in range(cols):
            y2 = min(r * h_stride + h_crop, height)
            x2 = min(c * w_stride + w_crop, width)
            windows.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0),
                            x2))
    return windows


class OnnxSegmentor(_TaskSession):
    """A segmentor export: :meth:`__call__` gives whole-image logits
    (B, num_classes, H, W); :meth:`inference` the logits of the config's
    test mode (``model.test_cfg.mode`` 'whole', or 'slide' with its
    ``crop_size`` and ``stride``, as mmseg); :meth:`predict` the label maps
    (B, H, W); :meth:`predict_batch` mmseg ``SegDataSample`` objects for a test
    dataloader's batch.

    Args:
        path (str): The ``.onnx`` file.
        config (str | Config, optional): The config it was exported from;
            without one, :meth:`inference` is whole-image.
        providers, threads: See :class:`OnnxModel`.
    """

    task = 'segmentor'

    def __init__(self, path: str, config=None,
                 providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None) -> None:
        super().__init__(path, config, providers, threads)
        self.test_cfg = dict(mode='whole')
        self.align_corners = False
        if self.cfg is not None:
            self.test_cfg = dict(self.cfg.model.get('test_cfg') or
                                 self.test_cfg)
            self.align_corners = bool(
                self.cfg.model.decode_head.get('align_corners', False))
        mode = self.test_cfg.get('mode', 'whole')
        if mode not in ('whole', 'slide'):
            raise DeployError(f"model.test_cfg.mode {mode!r}: OnnxSegmentor "
                              "runs 'whole' and 'slide'")
        if mode == 'slide':
            crop = tuple(self.test_cfg['crop_size'])
            check_size(crop, 'model.test_cfg.crop_size')
            if not self.dynamic and crop != self.size:
                raise DeployError(
                    f'{path} takes {self.size} inputs only and the config '
                    f'slides {crop} windows: export with --shape '
                    f'{crop[0]} {crop[1]} or --dynamic')

    def __call__(self, images: ArrayLike) -> torch.Tensor:
        return self.run(images)[0]

    def inference(self, images: ArrayLike) -> torch.Tensor:
        """Logits (B, num_classes, H, W) in the config's test mode. In
        'slide' mode each window's logits (the graph resizes them to the
        window) are summed into place and divided by the window count of
        each pixel, as mmseg's ``slide_inference``; an image smaller than
        the window is run whole."""
        if self.test_cfg.get('mode', 'whole') != 'slide':
            return self(images)
        images = torch.as_tensor(self._check(images))
        _, _, height, width = images.shape
        total, count = None, torch.zeros(1, 1, height, width)
        for y1, y2, x1, x2 in slide_windows(height, width,
                                            self.test_cfg['crop_size'],
                                            self.test_cfg['stride']):
            logits = self(images[:, :, y1:y2, x1:x2])
            if total is None:
                total = logits.new_zeros(logits.shape[:2] + (height, width))
            total[:, :, y1:y2, x1:x2] += logits
            count[:, :, y1:y2, x1:x2] += 1
        return total / count

    def predict(self, images: ArrayLike) -> torch.Tensor:
        return self.inference(images).argmax(dim=1)

    def predict_batch(self, data: dict) -> list:
        """mmseg's ``predict`` on a dataloader batch: logits of the test
        mode, the padding removed (``padding_size``), resized bilinearly to
        ``ori_shape``, argmax; ``seg_logits`` and ``pred_sem_seg`` set."""
        from mmengine.structures import PixelData
        data = self.preprocessor(data, False)
        logits = self.inference(self._network_input(data['inputs']))
        samples = data['data_samples']
        height, width = logits.shape[2:]
        for i, sample in enumerate(samples):
            meta = sample.metainfo
            left, right, top, bottom = meta.get(
                'img_padding_size', meta.get('padding_size', [0] * 4))
            one = logits[i:i + 1, :, top:height - bottom,
                         left:width - right]
            if meta.get('flip'):
                raise DeployError('flipped test inputs (TTA) are not '
                                  'supported by OnnxSegmentor')
            one = F.interpolate(one, size=tuple(meta['ori_shape'][:2]),
                                mode='bilinear',
                                align_corners=self.align_corners)[0]
            if one.shape[0] > 1:
                pred = one.argmax(dim=0, keepdim=True)
            else:
                thr = float(self.cfg.model.decode_head.get('threshold',
                                                           0.5))
                pred = (one.sigmoid() > thr).long()
            sample.set_data(dict(seg_logits=PixelData(data=one),
                                 pred_sem_seg=PixelData(data=pred)))
        return samples


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, height: int,
                width: int, threshold: float = 0.5) -> torch.Tensor:
    """Paste (N, M, M) mask probabilities into (N, height, width) images
    inside their (N, 4) boxes, as mmdet's ``_do_paste_mask`` does on the
    CPU (one box at a time, over the box's extent plus one pixel): each
    pixel centre is mapped to [-1, 1] across its box and sampled bilinearly
    (``grid_sample``, ``align_corners=False``, zeros outside), then
    ``>= threshold`` (a negative threshold gives uint8 ``prob * 255``).
    """
    binary = threshold >= 0
    out = torch.zeros(len(masks), height, width,
                      dtype=torch.bool if binary else torch.uint8)
    for i in range(len(masks)):
        box = boxes[i:i + 1]
        x0 = int(torch.clamp(box[0, 0].floor() - 1, min=0))
        y0 = int(torch.clamp(box[0, 1].floor() - 1, min=0))
        x1 = int(torch.clamp(box[0, 2].ceil() + 1, max=width))
        y1 = int(torch.clamp(box[0, 3].ceil() + 1, max=height))
        if x1 <= x0 or y1 <= y0:
            continue
        ys = torch.arange(y0, y1, dtype=torch.float32) + 0.5
        xs = torch.arange(x0, x1, dtype=torch.float32) + 0.5
        ys = (ys - box[0, 1]) / (box[0, 3] - box[0, 1]) * 2 - 1
        xs = (xs - box[0, 0]) / (box[0, 2] - box[0, 0]) * 2 - 1
        ys[torch.isinf(ys)] = 0
        xs[torch.isinf(xs)] = 0
        grid = torch.stack([xs.view(1, -1).expand(len(ys), -1),
                            ys.view(-1, 1).expand(-1, len(xs))], dim=2)
        pasted = F.grid_sample(masks[i][None, None].float(), grid[None],
                               align_corners=False)[0, 0]
        out[i, y0:y1, x0:x1] = (pasted >= threshold) if binary else (
            pasted * 255).to(torch.uint8)
    return out


class OnnxDetector(_TaskSession):
    """A whole Mask R-CNN export (``pytorch2onnx.py`` on a Mask R-CNN
    config) with the config it came from.

    :meth:`predict` takes images (paths or HxWx3 arrays in the dataset's
    channel order, BGR for mmdet's loaders), runs the config's test
    pipeline (resize with keep-ratio ...) and data preprocessor (normalise,
    pad), then ONNX Runtime one image at a time, and returns mmdet
    ``DetDataSample``s as ``model.predict(..., rescale=True)`` does:
    ``pred_instances.bboxes`` in the original image (divided by
    ``scale_factor``), ``scores``, ``labels`` and ``masks`` (N, H, W) bool,
    pasted at full resolution (:func:`paste_masks`, ``mask_thr_binary``).
    :meth:`predict_batch` does the same for a test dataloader's batch.

    Args:
        path (str): The ``.onnx`` file.
        config (str | Config): The config it was exported from.
        providers, threads: See :class:`OnnxModel`.
    """

    task = 'detector'

    def __init__(self, path: str, config,
                 providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None) -> None:
        if config is None:
            raise DeployError('OnnxDetector needs the config the file was '
                              'exported from (its test pipeline)')
        super().__init__(path, config, providers, threads)
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != ['input', 'img_shape']:
            raise DeployError(
                f'{path} takes {inputs}, not (input, img_shape): it is not a '
                'whole-detector export (an older pytorch2onnx.py exported '
                'the backbone + FPN only for Mask R-CNN configs); export it '
                'again without --features-only')
        self.test_cfg = json.loads(self.metadata.get(
            'mmvheat.test_cfg', '{"rcnn": {"mask_thr_binary": 0.5}}'))
        self._pipelines: Dict[str, Any] = {}

    def _pipeline(self, from_array: bool):
        key = 'array' if from_array else 'file'
        if key not in self._pipelines:
            from mmengine.dataset import Compose
            from mmengine.registry import init_default_scope
            steps = copy.deepcopy(self.cfg.test_dataloader.dataset.pipeline)
            steps = [t for t in steps
                     if 'LoadAnnotations' not in str(t['type'])]
            if from_array:
                steps[0] = dict(steps[0], type='mmdet.LoadImageFromNDArray')
            init_default_scope(self.cfg.default_scope)
            self._pipelines[key] = Compose(steps)
        return self._pipelines[key]

    def raw_outputs(self, image: torch.Tensor,
                    img_shape: Sequence[int]) -> Tuple[torch.Tensor, ...]:
        """``dets`` (N, 5), ``labels`` (N, ) and ``masks`` (N, M, M) of one
        preprocessed image (1, 3, H, W) whose resized image is
        ``img_shape`` (h, w) (network input coordinates)."""
        images = self._check(image)
        if images.shape[0] != 1:
            raise DeployError(f'the whole-detector file takes one image at '
                              f'a time, got a batch of {images.shape[0]}')
        shape = np.asarray([float(img_shape[0]), float(img_shape[1])],
                           dtype=np.float32)
        dets, labels, masks = self.session.run(
            None, {self.input_name: images, 'img_shape': shape})
        return (torch.from_numpy(dets[0]), torch.from_numpy(labels[0]),
                torch.from_numpy(masks[0]))

    def predict_batch(self, data: dict) -> list:
        """mmdet's ``predict(..., rescale=True)`` on a dataloader batch
        (``inputs``, ``data_samples``): the data samples with
        ``pred_instances`` set. Each image runs on its slice of the padded
        batch, as PyTorch sees it."""
        from mmengine.structures import InstanceData
        data = self.preprocessor(data, False)
        inputs = self._network_input(data['inputs'])
        samples = data['data_samples']
        thr = float(self.test_cfg['rcnn'].get('mask_thr_binary', 0.5))
        for i, sample in enumerate(samples):
            dets, labels, masks = self.raw_outputs(inputs[i:i + 1],
                                                   sample.img_shape)
            scale = torch.tensor(sample.scale_factor,
                                 dtype=torch.float32).repeat(2)
            boxes = dets[:, :4] / scale
            height, width = sample.ori_shape[:2]
            results = InstanceData()
            results.bboxes = boxes
            results.scores = dets[:, 4]
            results.labels = labels
            results.masks = paste_masks(masks, boxes, height, width, thr)
            sample.pred_instances = results
        return samples

    def predict(self, images) -> list:
        """``DetDataSample``s for ``images``: a path, an HxWx3 uint8 array
        (BGR, as mmdet's loaders give), or a list of them."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        samples = []
        for i, image in enumerate(images):
            if isinstance(image, np.ndarray):
                if image.ndim != 3 or image.shape[2] != 3:
                    raise DeployError(f'expected an HxWx3 image, got '
                                      f'{image.shape}')
                data = self._pipeline(True)(dict(img=image, img_id=i))
            else:
                if not osp.isfile(str(image)):
                    raise DeployError(f'image file not found: {image}')
                data = self._pipeline(False)(dict(img_path=str(image),
                                                  img_id=i))
            # vHeat's limit, on the image as given (not only after resize)
            check_size(data['data_samples'].ori_shape[:2], f'image {i}')
            samples.extend(self.predict_batch(dict(
                inputs=[data['inputs']],
                data_samples=[data['data_samples']])))
        return samples
