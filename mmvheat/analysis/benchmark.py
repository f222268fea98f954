"""Building blocks of ``tools/analysis_tools/benchmark.py``.

One *configuration* is a model spec, a mode (``infer`` or ``train``), a dtype,
a resolution and a batch size; :func:`run_config` times it and measures its
peak memory. Model specs: ``vheat-{t,s,b}[:IMPL][+nocp]`` (IMPL one of
:data:`mmvheat.ops.HCO_IMPLS`, default ``split``, or ``reference``: the
authors' layout and arithmetic, :mod:`mmvheat.analysis.reference_vheat`;
``+nocp`` turns selective activation checkpointing off),
``swin-{t,s,b}`` and ``convnext-{t,s,b}`` (mmpretrain's backbones).
Backends: ``pytorch`` (eager or compiled), ``onnxruntime`` (the model
exported with dynamic shapes, tables computed in the graph) and
``onnxruntime-fixed`` (exported at the configuration's size with the decay
tables baked in), vHeat inference in fp32 only.
"""
import os
import statistics
import tempfile
import time
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvheat.models import VHeat
from mmvheat.ops import DEFAULT_IMPL, HCO_IMPLS
from .classifier import Classifier
from .reference_vheat import ReferenceVHeat

SPEC_IMPLS = HCO_IMPLS + ('reference', )

ARCHS = {'t': 'tiny', 's': 'small', 'b': 'base'}
DTYPES = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
BACKENDS = ('pytorch', 'onnxruntime', 'onnxruntime-fixed')


def parse_spec(spec: str) -> tuple:
    """``'vheat-t:reference'`` -> ('vheat', 'tiny', 'reference');
    ``'vheat-t:matmul+nocp'`` -> ('vheat', 'tiny', 'matmul+nocp')."""
    name, _, impl = spec.partition(':')
    impl, plus, option = impl.partition('+')
    if plus and (option != 'nocp' or not name.startswith('vheat')
                 or impl == 'reference'):
        raise ValueError(f'{spec!r}: the only option is +nocp, for vheat '
                         'models other than :reference')
    family, _, size = name.partition('-')
    if family not in ('vheat', 'swin', 'convnext') or size not in ARCHS:
        raise ValueError(f'unknown model {spec!r}; expected vheat-{{t,s,b}}'
                         '[:IMPL], swin-{t,s,b} or convnext-{t,s,b}')
    if impl and family != 'vheat':
        raise ValueError(f'{spec!r}: only vheat models take an :IMPL')
    if family == 'vheat':
        impl = impl or DEFAULT_IMPL
        if impl not in SPEC_IMPLS:
            raise ValueError(f'{spec!r}: IMPL must be one of {SPEC_IMPLS}')
    return family, ARCHS[size], impl + plus + option


def build_backbone(spec: str, resolution: int, deploy: bool) -> nn.Module:
    """The backbone of ``spec`` sized for ``resolution`` (vHeat's FVEs and
    Swin's ``img_size``), as the authors measure."""
    family, arch, impl = parse_spec(spec)
    if family == 'vheat' and impl == 'reference':
        s = VHeat.arch_zoo[arch]
        dims = [s['dims'] * 2**i for i in range(4)]
        return ReferenceVHeat(s['depths'], dims, s['post_norm'],
                              s['layer_scale'], resolution, outnorm=True)
    if family == 'vheat':
        impl, _, option = impl.partition('+')
        model = VHeat(arch, img_size=resolution, hco_impl=impl,
                      selective_cp=option != 'nocp')
        if deploy:
            model.switch_to_deploy()
        return model
    from mmpretrain.models import ConvNeXt, SwinTransformer
    if family == 'swin':
        # pad_small_map: maps under the 7x7 window (the 64x64 probe) work
        return SwinTransformer(
            arch=arch, img_size=resolution, pad_small_map=True)
    return ConvNeXt(arch=arch)


def machine_meta(threads: int = None) -> Dict:
    """Where and when a benchmark ran: CPU model, cores, torch threads,
    torch version, device names and the date (for ``meta.json``)."""
    import datetime
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    meta = dict(cpu=cpu, cores=os.cpu_count(),
                threads=threads or torch.get_num_threads(),
                torch=torch.__version__,
                date=datetime.date.today().isoformat())
    if torch.cuda.is_available():
        meta['gpu'] = torch.cuda.get_device_name(0)
    return meta


def _rss_reset() -> None:
    """Reset the kernel's peak-RSS mark of this process (Linux)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def _proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float('nan')


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def run_config(spec: str, mode: str, dtype: str, resolution: int,
               batch: int, device: str = 'cpu', warmup: int = 2,
               runs: int = 5, deploy: bool = True,
               compile: bool = False, backend: str = 'pytorch') -> Dict:
    """Time one configuration.

    Args:
        spec (str): Model spec (see the module docstring).
        mode (str): 'infer' (forward under ``inference_mode``) or 'train'
            (forward, cross-entropy, backward, AdamW step).
        dtype (str): 'fp32', or 'fp16'/'bf16' autocast.
        resolution (int): Square input side.
        batch (int): Images per step.
        device (str): 'cpu' or 'cuda'. Defaults to 'cpu'.
        warmup (int): Untimed steps first. Defaults to 2.
        runs (int): Timed steps. Defaults to 5.
        deploy (bool): Deploy-mode vHeat for inference. Defaults to True.
        compile (bool): ``torch.compile`` the model. Defaults to False.
        backend (str): One of :data:`BACKENDS`. Defaults to 'pytorch'.

    Returns:
        dict: The configuration, ``times`` (s per step), ``median_s``,
        ``img_per_s``, ``spread`` ((max - min) / median), ``peak_mem_mb``
        and ``step_mem_mb``. On CUDA: ``max_memory_allocated`` over the
        warm-up and timed steps, and that minus the memory allocated before
        them. On CPU: the process's peak RSS over those steps, and that minus
        the RSS before them (weights, optimizer state and input are in the
        baseline; measure one configuration per process).
    """
    if mode not in ('infer', 'train'):
        raise ValueError(f"mode must be 'infer' or 'train', got {mode!r}")
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {list(DTYPES)}, got {dtype!r}')
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got '
                         f'{backend!r}')
    dev = torch.device(device)
    torch.manual_seed(0)
    model = Classifier(
        build_backbone(spec, resolution, deploy and mode == 'infer'))
    model = model.to(dev).train(mode == 'train')
    x = torch.randn(batch, 3, resolution, resolution, device=dev)
    target = torch.randint(0, 1000, (batch, ), device=dev)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    fn = torch.compile(model) if compile else model
    if backend != 'pytorch':
        fn = onnxruntime_model(model, spec, mode, dtype, x,
                               backend == 'onnxruntime-fixed', device)

    def step():
        with torch.autocast(dev.type, dtype=DTYPES[dtype],
                            enabled=dtype != 'fp32'):
            if mode == 'infer':
                with torch.inference_mode():
                    return fn(x)
            loss = F.cross_entropy(fn(x), target)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    if mode == 'train':  # AdamW's state belongs to the baseline
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optim.step()
    _sync(dev)
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) / 2**20
    else:
        _rss_reset()
        base = _proc_status_mb('VmRSS')
    for _ in range(warmup):
        step()
    times: List[float] = []
    for _ in range(runs):
        _sync(dev)
        start = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated(dev) / 2**20
            if dev.type == 'cuda' else _proc_status_mb('VmHWM'))
    median = statistics.median(times)
    return dict(
        model=spec, mode=mode, dtype=dtype, resolution=resolution,
        batch=batch, device=device, compile=compile, times=times,
        median_s=median, img_per_s=batch / median,
        spread=(max(times) - min(times)) / median, peak_mem_mb=peak,
        step_mem_mb=peak - base)


def onnxruntime_model(model: nn.Module, spec: str, mode: str, dtype: str,
                      x: torch.Tensor, fixed: bool, device: str):
    """``model`` (a :class:`Classifier` around a VHeat) exported to ONNX
    and loaded in an ONNX Runtime CPU session with torch's thread count;
    returns a callable on tensors. Dynamic shapes unless ``fixed`` (then
    the decay tables are constants)."""
    from mmvheat.deployment import OnnxModel, export_onnx, exportable_backbone
    if not spec.startswith('vheat') or mode != 'infer' or dtype != 'fp32' \
            or device != 'cpu' or not isinstance(model.backbone, VHeat):
        raise ValueError('onnxruntime rows: vheat models, infer, fp32, cpu '
                         '(not :reference)')
    model.backbone = exportable_backbone(
        model.backbone, tuple(x.shape[2:]) if fixed else None)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'model.onnx')
        export_onnx(model.eval(), path, tuple(x.shape[2:]), len(x),
                    dynamic=not fixed)
        session = OnnxModel(path, threads=torch.get_num_threads())
    return session.run
