"""Deployment of vHeat models: ONNX export (dynamic or fixed size), ONNX
Runtime sessions with the PyTorch models' interfaces, and int8 dynamic
quantization.

Not imported by the core (``mmvheat``, ``mmvheat.models``); ``onnx``,
``onnxscript`` and ``onnxruntime`` (``requirements/deploy.txt``) are
imported only by the functions that need them.
"""
from .graph import MIN_INPUT_SIZE, MatmulAdaptiveAvgPool2d, exportable_backbone
from .models import (
    TASKS,
    DeployError,
    Normalize,
    build_deploy_model,
    export_graph,
    load_model_weights,
    preprocess_of,
    reference_outputs,
    task_of,
)
from .onnx_export import (
    MIN_OPSET,
    check_opset,
    check_size,
    export_onnx,
    max_rel_error,
    metadata_for,
    read_metadata,
    verify_sizes,
)
from .preprocess import check_input_values, file_preprocessing, preprocess
from .quantize import quantize_onnx, quantize_torch
from .runtime import OnnxBackbone, OnnxClassifier, OnnxModel, OnnxSegmentor

__all__ = [
    'MIN_INPUT_SIZE', 'MIN_OPSET', 'TASKS', 'DeployError',
    'MatmulAdaptiveAvgPool2d', 'Normalize', 'OnnxBackbone', 'OnnxClassifier',
    'OnnxModel', 'OnnxSegmentor', 'build_deploy_model', 'check_opset',
    'check_size', 'export_graph', 'export_onnx', 'exportable_backbone',
    'load_model_weights', 'max_rel_error', 'metadata_for', 'preprocess_of',
    'quantize_onnx', 'quantize_torch', 'read_metadata', 'reference_outputs',
    'task_of', 'verify_sizes'
]
# images -> what an exported file takes (mmvheat.deployment.preprocess)
__all__ += ['check_input_values', 'file_preprocessing', 'preprocess']
