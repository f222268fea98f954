"""Building blocks of ``tools/analysis_tools/benchmark.py``.

One *configuration* is a model spec, a mode (``infer`` or ``train``), a dtype,
a resolution and a batch size; :func:`run_config` times it and measures its
peak memory. Model specs (:mod:`mmvheat.analysis.specs`, re-exported here):
``vheat-{t,s,b}[:IMPL][+sac|+nocp]`` (IMPL one of
:data:`mmvheat.ops.HCO_IMPLS`, default ``split``, or ``reference``: the
authors' layout and arithmetic, :mod:`mmvheat.analysis.reference_vheat`;
``+sac`` turns selective activation checkpointing on, ``+nocp`` keeps it
off, the default),
``swin-{t,s,b}`` and ``convnext-{t,s,b}`` (mmpretrain's backbones).
Backends: ``pytorch`` (eager or compiled), ``onnxruntime`` (the model
exported with dynamic shapes, tables computed in the graph) and
``onnxruntime-fixed`` (exported at the configuration's size with the decay
tables baked in) and ``aoti`` (the deployed model exported at the
configuration's size and compiled by AOTInductor,
:mod:`mmvheat.deployment.aoti`), vHeat inference in fp32 only.
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
from .classifier import Classifier
from .reference_vheat import ReferenceVHeat
from .specs import ARCHS, SPEC_IMPLS, parse_spec  # noqa: F401

DTYPES = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
BACKENDS = ('pytorch', 'onnxruntime', 'onnxruntime-fixed', 'aoti')


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
                      selective_cp=option == 'sac')
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


# Square products the GEMM peak is the best of: the machine's limit for
# dense matrix products (the work vHeat, Swin and ConvNeXt are bound by).
PEAK_SHAPES = (1024, 2048, 3072)


def native_dtypes(device: str = 'cpu') -> List[str]:
    """The benchmark dtypes the device computes natively: fp32 always;
    on CPUs bf16 with ``avx512_bf16`` or ``amx_bf16`` and fp16 with
    ``avx512_fp16`` or ``amx_fp16`` in /proc/cpuinfo (elsewhere they are
    emulated and their timings meaningless); on CUDA fp16, and bf16 where
    ``torch.cuda.is_bf16_supported()``."""
    if device.startswith('cuda'):
        bf16 = ['bf16'] if torch.cuda.is_bf16_supported() else []
        return ['fp32', 'fp16'] + bf16
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line.split(':', 1)[1].split() for line in f
                          if line.startswith('flags')), [])
    except OSError:
        flags = []
    found = ['fp32']
    if {'avx512_bf16', 'amx_bf16'} & set(flags):
        found.append('bf16')
    if {'avx512_fp16', 'amx_fp16'} & set(flags):
        found.append('fp16')
    return found


def gemm_peak(dtype: str = 'fp32', device: str = 'cpu', runs: int = 5,
              shapes=PEAK_SHAPES) -> Dict:
    """The machine's matrix-product limit: the best GFLOP/s (2 n^3 FLOP per
    product) over square ``torch.mm`` products of ``shapes`` in ``dtype``,
    each the median of ``runs`` timed products.

    Returns:
        dict: ``dtype``, ``gflops`` (the peak) and ``per_shape``
        ({n: GFLOP/s}).
    """
    dev = torch.device(device)
    per_shape = {}
    for n in shapes:
        a = torch.randn(n, n, device=dev).to(DTYPES[dtype] or torch.float32)
        b = torch.randn(n, n, device=dev).to(a.dtype)
        torch.mm(a, b)
        times = []
        for _ in range(runs):
            _sync(dev)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(dev)
            times.append(time.perf_counter() - start)
        per_shape[n] = 2 * n**3 / statistics.median(times) / 1e9
    return dict(dtype=dtype, gflops=max(per_shape.values()),
                per_shape=per_shape)


def model_macs(spec: str, resolution: int) -> float:
    """Multiply-adds per image of ``spec``'s classifier (backbone, pool,
    1000-way head) at a square ``resolution``, from the FLOPs tool
    (:mod:`mmvheat.analysis.flops`). One count per architecture: every
    vHeat implementation is charged the dense DCT of the deployed model
    (the paper's count), whatever it computes."""
    from .flops import backbone_flops, count
    family, arch, _ = parse_spec(spec)
    if family == 'vheat':
        return backbone_flops(arch, resolution, 'deploy', 'matmul')['flops']
    model = Classifier(build_backbone(spec, resolution, deploy=False))
    return count(model, (torch.zeros(1, 3, resolution, resolution), ))[
        'flops']


def achieved(result: Dict, macs: float, peak_gflops: float = None) -> Dict:
    """Achieved GFLOP/s of a result row: ``2 x multiply-adds x img/s``,
    three times that for a training step (forward, and a backward of about
    twice the forward's products), and its fraction of ``peak_gflops``."""
    passes = 3 if result['mode'] == 'train' else 1
    gflops = 2 * macs * passes * result['img_per_s'] / 1e9
    out = dict(macs=macs, gflops=gflops)
    if peak_gflops:
        out['peak_frac'] = gflops / peak_gflops
    return out


# Where a step's time goes: profiler op names by kind of work. Products
# are what the GEMM peak bounds; everything else is memory-bound work.
TIME_KINDS = (
    ('fused (compiled)', ('cpp_fused', 'triton_', 'compiled')),
    ('products', ('mm', 'matmul', 'linear', 'conv', 'gemm', 'bmm')),
    ('norms', ('layer_norm', 'batch_norm', 'group_norm')),
    ('copies', ('copy', 'clone', 'contiguous', 'cat', 'index', 'to_copy',
                'permute', 'empty', 'zero', 'fill')),
    ('elementwise', ('add', 'mul', 'sub', 'div', 'gelu', 'silu', 'relu',
                     'pow', 'exp', 'sum', 'mean', 'where', 'softmax',
                     'interpolate', 'upsample', 'bernoulli', 'sigmoid',
                     'tanh', 'addcmul', 'addcdiv', 'sqrt', 'lerp', 'foreach',
                     'neg', 'threshold')),
)


def time_kind(op_name: str) -> str:
    """The kind of work (a :data:`TIME_KINDS` name, or 'other') of a
    profiler op name."""
    name = op_name.lower().split('::')[-1]
    for kind, words in TIME_KINDS:
        if any(word in name for word in words):
            return kind
    return 'other'


def time_shares(step, device: torch.device) -> Dict[str, float]:
    """Run ``step()`` once under :mod:`torch.profiler` and return the
    share of the self time of leaf ops (CPU, or CUDA kernels on a GPU) in
    each kind of work (:func:`time_kind`), plus ``total_ms``."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        step()
        _sync(device)
    totals: Dict[str, float] = {}
    for event in prof.key_averages():
        us = (event.self_device_time_total if device.type == 'cuda' else
              event.self_cpu_time_total)
        if us > 0:
            kind = time_kind(event.key)
            totals[kind] = totals.get(kind, 0.0) + us
    total = sum(totals.values()) or 1.0
    shares = {k: v / total for k, v in sorted(totals.items())}
    shares['total_ms'] = total / 1e3
    return shares


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


def compiled(model: nn.Module, freeze: bool = False):
    """``torch.compile(model)``; with ``freeze``, every call runs under
    ``torch._inductor.config.patch(freezing=True)`` (weights folded into
    the graph and prepacked for the CPU's matrix products, for inference
    without autograd). Inductor reads ``freezing`` from its config when the
    graph compiles; ``torch.compile(options=dict(freezing=True))`` does not
    turn it on (PyTorch 2.14: the linear layers stay ``addmm`` with a bias
    copy instead of packed MKL products)."""
    fn = torch.compile(model)
    if not freeze:
        return fn

    def frozen(*args):
        with torch._inductor.config.patch(freezing=True):
            return fn(*args)

    return frozen


def run_config(spec: str, mode: str, dtype: str, resolution: int,
               batch: int, device: str = 'cpu', warmup: int = 2,
               runs: int = 5, deploy: bool = True,
               compile: bool = False, backend: str = 'pytorch',
               profile: bool = False) -> Dict:
    """Time one configuration.

    Args:
        spec (str): Model spec (see the module docstring).
        mode (str): 'infer' (forward under ``inference_mode``) or 'train'
            (forward, cross-entropy, backward, AdamW step; fp16 with a
            ``torch.amp.GradScaler``).
        dtype (str): 'fp32', or 'fp16'/'bf16' autocast.
        resolution (int): Square input side.
        batch (int): Images per step.
        device (str): 'cpu' or 'cuda'. Defaults to 'cpu'.
        warmup (int): Untimed steps first. Defaults to 2.
        runs (int): Timed steps. Defaults to 5.
        deploy (bool): Deploy-mode vHeat for inference. Defaults to True.
        compile (bool): ``torch.compile`` the model, for inference with
            inductor's ``freezing`` (weights folded and prepacked).
            Defaults to False.
        backend (str): One of :data:`BACKENDS`. Defaults to 'pytorch'.
        profile (bool): After the timed steps, profile one more and add
            ``time_shares`` (:func:`time_shares`). Defaults to False.

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
    fn = compiled(model, freeze=mode == 'infer') if compile else model
    if backend == 'aoti':
        fn = aoti_model(model, spec, mode, dtype, x, device)
    elif backend != 'pytorch':
        fn = onnxruntime_model(model, spec, mode, dtype, x,
                               backend == 'onnxruntime-fixed', device)

    # fp16 training scales the loss (the AMP recipe: backward and step
    # outside autocast); fp32 and bf16 need no scale
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == 'fp16')

    def step():
        with torch.autocast(dev.type, dtype=DTYPES[dtype],
                            enabled=dtype != 'fp32'):
            if mode == 'infer':
                with torch.inference_mode():
                    return fn(x)
            loss = F.cross_entropy(fn(x), target)
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()

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
    result = dict(
        model=spec, mode=mode, dtype=dtype, resolution=resolution,
        batch=batch, device=device, compile=compile, times=times,
        median_s=median, img_per_s=batch / median,
        spread=(max(times) - min(times)) / median, peak_mem_mb=peak,
        step_mem_mb=peak - base)
    if profile:  # after the memory marks: the profiler's own use is not in
        result['time_shares'] = time_shares(step, dev)
    return result


def aoti_model(model: nn.Module, spec: str, mode: str, dtype: str,
               x: torch.Tensor, device: str):
    """``model`` (a :class:`Classifier` around a deployed VHeat) exported
    at ``x``'s shape and compiled into an AOTInductor package
    (:func:`mmvheat.deployment.export_aoti`); returns a callable on
    tensors."""
    from mmvheat.deployment import export_aoti, load_aoti
    if not spec.startswith('vheat') or mode != 'infer' or dtype != 'fp32' \
            or device != 'cpu':
        raise ValueError('aoti rows: vheat models, infer, fp32, cpu')
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'model.pt2')
        export_aoti(model.eval(), path, tuple(x.shape[2:]), len(x))
        package = load_aoti(path)
    return lambda images: package(images)[0]


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
