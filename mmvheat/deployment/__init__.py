"""Deployment of vHeat models: ONNX export (dynamic or fixed size), ONNX
Runtime sessions with the PyTorch models' interfaces, int8 dynamic
quantization, and AOTInductor packages (``torch.export`` + AOTInductor).

Not imported by the core (``mmvheat``, ``mmvheat.models``); ``onnx``,
``onnxscript`` and ``onnxruntime`` (``requirements/deploy.txt``) are
imported only by the functions that need them.
"""
from .aoti import export_aoti, load_aoti
from .detection import (
    SUPPORTED,
    MaskRCNNGraph,
    check_mask_rcnn,
    mask_rcnn_test_cfg,
)
from .graph import (
    EXPORT_MIN_SIZE,
    MIN_INPUT_SIZE,
    MatmulAdaptiveAvgPool2d,
    exportable_backbone,
    image_dims,
)
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
    task_metadata,
    verify_sizes,
)
from .preprocess import check_input_values, file_preprocessing, preprocess
from .quantize import quantize_onnx, quantize_torch
from .runtime import (
    OnnxBackbone,
    OnnxClassifier,
    OnnxDetector,
    OnnxModel,
    OnnxSegmentor,
    check_file_fits_config,
    paste_masks,
    slide_windows,
)

__all__ = [
    'export_aoti', 'load_aoti', 'EXPORT_MIN_SIZE', 'MIN_INPUT_SIZE',
    'MIN_OPSET', 'SUPPORTED', 'image_dims',
    'TASKS', 'DeployError',
    'MaskRCNNGraph', 'MatmulAdaptiveAvgPool2d', 'Normalize', 'OnnxBackbone',
    'OnnxClassifier', 'OnnxDetector', 'OnnxModel', 'OnnxSegmentor',
    'build_deploy_model', 'check_file_fits_config', 'check_mask_rcnn',
    'check_opset', 'check_size', 'export_graph', 'export_onnx',
    'exportable_backbone', 'load_model_weights', 'mask_rcnn_test_cfg',
    'max_rel_error', 'metadata_for', 'paste_masks', 'preprocess_of',
    'quantize_onnx', 'quantize_torch', 'read_metadata', 'reference_outputs',
    'slide_windows', 'task_of', 'task_metadata', 'verify_sizes'
]
# images -> what an exported file takes (mmvheat.deployment.preprocess)
__all__ += ['check_input_values', 'file_preprocessing', 'preprocess']
