"""int8 dynamic quantization: ONNX Runtime's on an exported file, PyTorch's
on the model.

Dynamic quantization stores weights in int8 and quantizes activations per
call, so it needs no calibration data. What each covers differs:

* :func:`quantize_onnx` (``onnxruntime.quantization.quantize_dynamic``)
  quantizes every MatMul/Gemm whose weight is a constant: all linear layers,
  the MLP's 1x1 convs (exported as MatMul) and the heads' linear layers. The
  DCT products of a dynamic file multiply computed bases, so they stay fp32.
* :func:`quantize_torch` (``torch.ao.quantization.quantize_dynamic``)
  swaps the ``nn.Linear`` modules (HCO ``linear``/``out_linear``/``to_k``,
  the classifier's ``fc``); the MLP's 1x1 convs are ``Conv2d`` and stay
  fp32, as do all other convolutions.
"""
from typing import Sequence

import torch
import torch.nn as nn

__all__ = ['quantize_onnx', 'quantize_torch']


def quantize_onnx(src: str, dst: str,
                  op_types: Sequence[str] = ('MatMul', 'Gemm')) -> str:
    """Write an int8 (weights; activations quantized at run time) copy of
    the ONNX file ``src`` to ``dst``.

    Args:
        src (str): An exported ``.onnx`` file.
        dst (str): The quantized file.
        op_types (Sequence[str]): Op types to quantize.
            Defaults to ('MatMul', 'Gemm').

    Returns:
        str: ``dst``.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    metadata = onnx.load(src, load_external_data=False).metadata_props
    quantize_dynamic(src, dst, op_types_to_quantize=list(op_types),
                     weight_type=QuantType.QInt8)
    model = onnx.load(dst)
    del model.metadata_props[:]
    model.metadata_props.extend(metadata)
    entry = model.metadata_props.add()
    entry.key, entry.value = 'mmvheat.quantized', 'int8-dynamic'
    onnx.save(model, dst)
    return dst


def quantize_torch(model: nn.Module) -> nn.Module:
    """An int8 dynamic-quantized copy of ``model`` (its ``nn.Linear``
    layers; the input model is unchanged), in eval mode. Decay tables of a
    deployed vHeat backbone are dropped, so the factors come from the
    quantized ``to_k``."""
    from torch.ao.quantization import quantize_dynamic
    quantized = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    quantized.eval()
    for module in quantized.modules():
        if hasattr(module, 'remove_decay_tables'):
            module.remove_decay_tables()
    return quantized
