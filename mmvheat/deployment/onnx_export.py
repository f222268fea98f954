"""Export a graph from :func:`~mmvheat.deployment.models.export_graph` to
ONNX, and check a file against PyTorch in ONNX Runtime.

``onnx``, ``onnxscript`` (used by ``torch.onnx.export(dynamo=True)``) and
``onnxruntime`` are imported when a function needs them, so importing this
module needs torch alone.
"""
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .graph import MIN_INPUT_SIZE
from .models import DeployError

__all__ = ['MIN_OPSET', 'check_opset', 'check_size', 'export_onnx',
           'output_names', 'example_inputs', 'verify_sizes',
           'max_rel_error', 'read_metadata',
           'metadata_for', 'task_metadata']

# torch's exporter implements opset 18 and later (it silently keeps 18 when
# asked for less); the graph also needs it: the FVE's cubic Resize uses the
# opset-18 form of Resize, LayerNorm maps to LayerNormalization (17).
MIN_OPSET = 18
INPUT_NAME = 'input'


def check_opset(opset: int) -> int:
    """``opset`` when this graph can be written with it, else a
    :class:`DeployError` that says which range works."""
    import onnx
    newest = onnx.defs.onnx_opset_version()
    if opset < MIN_OPSET:
        raise DeployError(
            f'--opset {opset} is too low: the graph needs opset >= '
            f'{MIN_OPSET} (torch.onnx.export implements opset 18 and later; '
            'the bicubic FVE resize is an opset-18 Resize and the LayerNorms '
            f'are LayerNormalization, opset 17). Use --opset {MIN_OPSET}..'
            f'{newest}.')
    if opset > newest:
        raise DeployError(f'--opset {opset} is newer than the installed onnx '
                          f'{onnx.__version__} knows (at most {newest})')
    return opset


def check_size(size: Sequence[int], what: str = 'input') -> Tuple[int, int]:
    """``(H, W)`` when both are at least :data:`MIN_INPUT_SIZE`."""
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < MIN_INPUT_SIZE:
        raise DeployError(
            f'{what} size {size} is too small: vHeat needs H and W >= '
            f'{MIN_INPUT_SIZE} px (its last stage has stride 32)')
    return size


DETECTOR_INPUTS = [INPUT_NAME, 'img_shape']
DETECTOR_OUTPUTS = ['dets', 'labels', 'masks']


def output_names(task: str, num_outputs: int) -> List[str]:
    if task == 'classifier':
        return ['logits']
    if task == 'segmentor':
        return ['seg_logits']
    if task == 'detector':
        return list(DETECTOR_OUTPUTS)
    return [f'feat{i}' for i in range(num_outputs)]


def example_inputs(task: str, batch: int,
                   size: Tuple[int, int]) -> Tuple[torch.Tensor, ...]:
    """Random example inputs of the graph of ``task``: images, and for the
    whole detector also ``img_shape`` (the image fills the input)."""
    x = torch.randn(batch, 3, *size)
    if task == 'detector':
        return x, torch.tensor([float(size[0]), float(size[1])])
    return (x, )


def export_onnx(graph: nn.Module,
                path: str,
                size: Sequence[int],
                batch: int = 1,
                dynamic: bool = True,
                opset: int = MIN_OPSET,
                metadata: Optional[Dict[str, str]] = None) -> str:
    """Export ``graph`` to ``path`` with ``torch.onnx.export(dynamo=True)``.

    The whole-detector graph (task ``'detector'``) takes two inputs,
    ``input`` (1, 3, H, W) and ``img_shape`` (2, ), and has batch 1 (its
    outputs have a data-dependent length per image); ``dynamic`` makes H and
    W dynamic only.

    Args:
        graph (nn.Module): From :func:`export_graph`.
        path (str): The ``.onnx`` file (weights inside, one file).
        size (tuple[int, int]): (H, W) of the example input; the only size
            the file takes unless ``dynamic``.
        batch (int): Example batch (at least 2 when ``dynamic``); the only
            batch a fixed file takes. Must be 1 for the whole detector.
            Defaults to 1.
        dynamic (bool): Dynamic batch, H and W (H, W >= 32). Defaults to
            True.
        opset (int): ONNX opset (>= :data:`MIN_OPSET`). Defaults to 18.
        metadata (dict[str, str], optional): Written to the file's
            ``metadata_props``, with the task (``graph.task``), whether it
            is dynamic and the example size.

    Returns:
        str: ``path``.
    """
    check_opset(opset)
    size = check_size(size)
    task = getattr(graph, 'task', 'backbone')
    detector = task == 'detector'
    if detector and batch != 1:
        raise DeployError(
            f'--batch {batch}: the whole-detector graph takes one image at '
            'a time (batch 1; its outputs have a data-dependent number of '
            'detections per image). Run images one by one, or export with '
            '--features-only for batched FPN features.')
    if dynamic and not detector:  # a batch of 1 would fix the batch at 1
        batch = max(batch, 2)
    args = example_inputs(task, batch, size)
    graph.eval()
    with torch.no_grad():
        outs = graph(*args)
    n_out = 1 if torch.is_tensor(outs) else len(outs)
    shapes = None
    if dynamic:
        dim = torch.export.Dim
        image = {2: dim.DYNAMIC(min=MIN_INPUT_SIZE),
                 3: dim.DYNAMIC(min=MIN_INPUT_SIZE)}
        shapes = (image, None) if detector else (
            {0: dim.DYNAMIC(min=1), **image}, )
    try:
        # traced without autograd, as the file runs (the HCO's fixed DCT
        # rule differs under autograd)
        with torch.no_grad():
            program = torch.onnx.export(
                graph, args, dynamo=True, dynamic_shapes=shapes,
                opset_version=opset,
                input_names=DETECTOR_INPUTS if detector else [INPUT_NAME],
                output_names=output_names(task, n_out), external_data=False,
                verbose=False)
    except Exception as err:  # name the stage, keep the exporter's message
        raise DeployError(
            f'torch.onnx.export failed for the {task} graph '
            f'({"dynamic" if dynamic else "fixed"} {size}, opset {opset}): '
            f'{type(err).__name__}: {str(err).splitlines()[0]}') from err
    model = program.model_proto
    import onnx
    metadata = {'mmvheat.task': task,
                'mmvheat.dynamic': json.dumps(bool(dynamic)),
                'mmvheat.size': json.dumps(list(size)),
                **dict(metadata or {})}
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(model, path)
    return path


def verify_sizes(size: Sequence[int], dynamic: bool) -> List[Tuple[int, int]]:
    """The sizes ``--verify`` runs: the export size, and for a dynamic file
    two more that are odd, non-square and not multiples of 32."""
    h, w = size
    if not dynamic:
        return [(h, w)]
    return [(h, w), (h + 37, max(MIN_INPUT_SIZE, w - 27) | 1),
            (max(MIN_INPUT_SIZE, h // 2 + 13) | 1, w + 45)]


def max_rel_error(outs: Sequence[np.ndarray],
                  refs: Sequence[torch.Tensor]) -> float:
    """max over outputs of max |out - ref| / max |ref|."""
    errs = []
    for out, ref in zip(outs, refs):
        ref = ref.detach().numpy()
        errs.append(float(np.abs(out - ref).max()
                          / max(np.abs(ref).max(), 1e-12)))
    return max(errs)


def read_metadata(path: str) -> Dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading weights)."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def metadata_for(normalize: bool, preprocess) -> Dict[str, str]:
    """Metadata on the normalisation: in the graph or not, mean, std,
    BGR -> RGB."""
    mean, std, flip = preprocess
    return {
        'mmvheat.normalize_in_graph': json.dumps(bool(normalize)),
        'mmvheat.mean': json.dumps(mean),
        'mmvheat.std': json.dumps(std),
        'mmvheat.bgr_to_rgb': json.dumps(bool(flip)),
    }


def task_metadata(model: nn.Module, graph: nn.Module) -> Dict[str, str]:
    """Metadata the runtimes check against a config: the number of classes
    of the model's head, and for the whole detector the ``test_cfg``
    numbers the graph baked in (the runtime reads ``mask_thr_binary``)."""
    meta = {}
    task = getattr(model, 'task', None)
    head = {'classifier': lambda: model.head,
            'segmentor': lambda: model.decode_head,
            'detector': lambda: model.roi_head.bbox_head}.get(task)
    if head is not None and hasattr(head(), 'num_classes'):
        meta['mmvheat.num_classes'] = str(int(head().num_classes))
    if getattr(graph, 'task', None) == 'detector':
        from .detection import mask_rcnn_test_cfg
        meta['mmvheat.graph'] = 'mask-rcnn'
        meta['mmvheat.test_cfg'] = json.dumps(mask_rcnn_test_cfg(model))
    return meta
