"""FLOP counting for vHeat with mmengine's analysis tools.

mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (fvcore's counter)
counts one multiply-add as one FLOP, the paper's convention. Two handles are
added here:

* ``aten::matmul`` with broadcasting: mmengine's handle ignores the batch
  dimensions of the second operand, so ``(n, h) @ (B, h, k)`` - the DCT
  along an axis - would count ``n * h * k`` instead of ``B * n * h * k``;
* ``aten::fft_rfft2`` / ``aten::fft_irfft2`` count the dense DCT products
  they replace (``B * C * H * W * (H + W)`` per 2-D transform, on the
  (B, 2H, 2W, C) mirror extension), as the paper counts.

So ``hco_impl`` 'matmul' and 'fft' count the paper's dense DCT; 'split'
(the model's default, and the default here) counts the products it does,
fewer where the even/odd split applies (:mod:`mmvheat.ops.split_dct`).
Elementwise work (the split's additions, the damping) is not counted, as
mmengine counts none.

Forms: ``train`` is the model as it trains (each block's ``to_k`` Linear
over its FVE is counted), ``deploy`` the deployed model (the decay tables of
the FVE's grid reused, as the paper counts; a map of another size computes
its factors in the forward, and they are counted).
"""
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape

from mmvheat.models import VHeat
from mmvheat.ops import DEFAULT_IMPL
from .classifier import Classifier

FORMS = ('deploy', 'train')
def broadcast_matmul_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of ``torch.matmul`` with broadcast batch dimensions."""
    a, b = (list(get_shape(v)) for v in inputs[:2])
    if len(a) == 1:
        a = [1] + a
    if len(b) == 1:
        b = b + [1]
    if a[-1] != b[-2]:
        raise ValueError(f'matmul shapes do not match: {a} @ {b}')
    batch = torch.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return int(torch.Size(batch).numel()) * a[-2] * a[-1] * b[-1]


def _int_list(value) -> Optional[List[int]]:
    """A traced ``int[]`` argument (constant or ``ListConstruct``)."""
    ivalue = value.toIValue()
    if ivalue is not None:
        return list(ivalue)
    node = value.node()
    if node.kind() == 'prim::ListConstruct':
        items = [v.toIValue() for v in node.inputs()]
        if all(isinstance(v, int) for v in items):
            return items
    return None


def dct_via_fft_counter(real_is_output: bool):
    """A handle counting an ``rfft2`` (``real_is_output=False``) or
    ``irfft2`` of a (..., 2H, ..., 2W, ...) mirror extension as the dense 2-D
    DCT it computes: ``(numel / 4) * (H + W)`` multiply-adds."""

    def handle(inputs: List[Any], outputs: List[Any]) -> int:
        shape = list(get_shape(outputs[0] if real_is_output else inputs[0]))
        dims = _int_list(inputs[2]) or [-2, -1]
        h, w = (shape[d % len(shape)] // 2 for d in dims)
        return int(torch.Size(shape).numel()) // 4 * (h + w)

    return handle


def flop_analyzer(model: nn.Module, inputs) -> FlopAnalyzer:
    """mmengine's FlopAnalyzer with the handles above."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(
        **{
            'aten::matmul': broadcast_matmul_flop_jit,
            'aten::fft_rfft2': dct_via_fft_counter(real_is_output=False),
            'aten::fft_irfft2': dct_via_fft_counter(real_is_output=True),
        })
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def set_form(model: nn.Module, form: str) -> None:
    """Put every VHeat inside ``model`` in the training or deployed form.

    ``deploy`` builds the decay tables (:meth:`VHeat.switch_to_deploy`),
    so ``to_k`` and the power are not counted at the FVE's own size;
    ``train`` removes them.
    """
    if form not in FORMS:
        raise ValueError(f'form must be one of {FORMS}, got {form!r}')
    model.eval()
    for module in model.modules():
        if isinstance(module, VHeat):
            if form == 'deploy':
                module.switch_to_deploy()
            else:
                module.remove_decay_tables()


def count(model: nn.Module, inputs, form: str = 'deploy') -> Dict[str, float]:
    """FLOPs and parameters of ``model`` on ``inputs``.

    Args:
        model (nn.Module): The model (any containing a VHeat).
        inputs (tuple): Positional inputs of ``model.forward``.
        form (str): 'deploy' or 'train' (see :func:`set_form`).

    Returns:
        dict: ``flops`` (multiply-adds), ``params`` and ``aux_params`` (those
        of an mmseg ``auxiliary_head``, a training-only part).
    """
    set_form(model, form)
    with torch.no_grad():
        flops = flop_analyzer(model, inputs).total()
    params = sum(p.numel() for p in model.parameters())
    aux = sum(p.numel() for n, p in model.named_parameters()
              if 'auxiliary_head' in n)
    return dict(flops=float(flops), params=float(params),
                aux_params=float(aux))


def backbone_flops(arch: str, resolution: int, form: str = 'deploy',
                   hco_impl: str = DEFAULT_IMPL,
                   num_classes: Optional[int] = 1000) -> Dict[str, float]:
    """FLOPs of the ImageNet classifier (backbone, pooled LayerNorm, Linear
    head) or, with ``num_classes=None``, of the backbone alone, at a square
    ``resolution`` with the FVEs on that grid (as the authors measure)."""
    backbone = VHeat(arch, img_size=resolution, hco_impl=hco_impl)
    model = backbone if num_classes is None else Classifier(
        backbone, num_classes)
    return count(model, (torch.zeros(1, 3, resolution, resolution), ), form)


class _TensorMode(nn.Module):
    """A task model's tensor-mode forward (``mode='tensor'``, which the
    three libraries' models share) as a module, with the data samples
    mmdet's two-stage detectors need for proposals."""

    def __init__(self, model: nn.Module, data_samples=None) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, x: torch.Tensor):
        return self.model(x, self.data_samples, mode='tensor')


def task_model_flops(config: str, height: int, width: int,
                     form: str = 'deploy',
                     hco_impl: Optional[str] = None) -> Dict[str, float]:
    """FLOPs and parameters of the model of an mmdet / mmseg / mmpretrain
    config on one (height, width) image, as those libraries' get_flops
    tools count it (tensor-mode forward: for Mask R-CNN the RPN, box and
    mask heads on the test config's proposals; for UperNet the decode
    head). Weights are not loaded (random init). ``hco_impl`` switches the
    VHeat backbone's DCT (None: the config's); the result's ``hco_impl``
    says which one was counted."""
    import importlib

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    if hco_impl is not None:
        cfg.model.backbone['hco_impl'] = hco_impl
    counted = cfg.model.backbone.get('hco_impl', DEFAULT_IMPL)
    model = registry.build(cfg.model)
    x = torch.zeros(1, 3, height, width)
    samples = None
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        samples = [
            DetDataSample(
                metainfo=dict(
                    img_shape=(height, width), ori_shape=(height, width),
                    pad_shape=(height, width),
                    batch_input_shape=(height, width),
                    scale_factor=(1.0, 1.0)))
        ]
    return dict(count(_TensorMode(model, samples), (x, ), form),
                hco_impl=counted)
