"""Running exported files in ONNX Runtime with the PyTorch models'
interfaces.

* :class:`OnnxBackbone`: images -> tuple of feature maps, like
  ``VHeat.forward`` (or the FPN levels of a detector's export);
* :class:`OnnxClassifier`: images -> logits, and :meth:`predict` ->
  mmpretrain-like ``pred_score`` / ``pred_label``;
* :class:`OnnxSegmentor`: images -> whole-image logits, :meth:`predict` ->
  label maps.

Images are (B, 3, H, W) float tensors or arrays, H and W >= 32. A file
exported with the normalisation inside takes raw pixels in the dataset's
channel order; one without it takes what the model's data preprocessor
produces (normalised RGB). ``normalize_in_graph`` tells which (from the
file's metadata); :func:`mmvheat.deployment.preprocess` prepares raw images
for either. Integer pixels for a file that expects normalised floats, and
NaN or inf values, are refused (:class:`DeployError`).
"""
import json
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .models import DeployError
from .onnx_export import check_size, read_metadata
from .preprocess import check_input_values

__all__ = ['OnnxModel', 'OnnxBackbone', 'OnnxClassifier', 'OnnxSegmentor']

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
        if self.task is not None and task is not None and task not in (
                self.task, 'detector'):
            raise DeployError(f'{path} is a {task} export; '
                              f'{type(self).__name__} needs a {self.task}')
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


class OnnxBackbone(OnnxModel):
    """Feature maps: a tuple of (B, C_i, H_i, W_i) tensors, as the
    PyTorch backbone (or the detector's neck) returns."""


class OnnxClassifier(OnnxModel):
    """A classifier export: :meth:`__call__` gives the logits
    (B, num_classes), :meth:`predict` the scores and labels."""

    task = 'classifier'

    def __call__(self, images: ArrayLike) -> torch.Tensor:
        return self.run(images)[0]

    def predict(self, images: ArrayLike) -> Dict[str, torch.Tensor]:
        """``pred_score`` (softmax, (B, num_classes)) and ``pred_label``
        ((B, )), the fields of mmpretrain's ``DataSample``."""
        scores = self(images).softmax(dim=1)
        return dict(pred_score=scores, pred_label=scores.argmax(dim=1))


class OnnxSegmentor(OnnxModel):
    """A segmentor export: :meth:`__call__` gives whole-image logits
    (B, num_classes, H, W), :meth:`predict` the label maps (B, H, W)."""

    task = 'segmentor'

    def __call__(self, images: ArrayLike) -> torch.Tensor:
        return self.run(images)[0]

    def predict(self, images: ArrayLike) -> torch.Tensor:
        return self(images).argmax(dim=1)
