"""Accuracy and speed of int8 dynamic quantization on a validation set.

    python tools/deployment/int8_report.py CONFIG CHECKPOINT
        [--data-root DIR] [--out-dir DIR] [--repeat 3] [--threads N]

For a classifier (top-1) or a segmentor (mIoU), runs the config's test
dataloader through four models on the same normalised inputs: PyTorch fp32,
PyTorch int8 (``torch.ao.quantization.quantize_dynamic`` of the Linear
layers), ONNX Runtime fp32 (a dynamic export) and ONNX Runtime int8
(``onnxruntime.quantization.quantize_dynamic`` of that file's MatMul/Gemm).
Prints the metric, the max logit drift against PyTorch fp32 (max |diff| /
max |fp32 logit| over the set) and the throughput over the set (median of
``--repeat`` interleaved passes; the machine may be shared, so use ratios).
The two .onnx files go into ``--out-dir`` (``--work-dir`` is its older
spelling).
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import time

from mmvheat.utils import (
    ToolError,
    add_debug_arg,
    add_out_dir_arg,
    positive_int,
    require_file,
    run_tool,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='an mmpretrain classifier or mmseg '
                        'UperNet config with a vHeat backbone')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('--data-root', help="override the test dataset's "
                        'data_root')
    add_out_dir_arg(parser, 'work_dirs/int8', 'the fp32 and int8 .onnx files',
                    old=['--work-dir'])
    parser.add_argument('--repeat', type=positive_int, default=3,
                        help='interleaved passes over the set (default: '
                        '%(default)s)')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='torch and ONNX Runtime threads (default: '
                        'torch decides)')
    add_debug_arg(parser)
    return parser.parse_args(argv)


def load_batches(cfg, model, data_root=None):
    """(normalised images, labels or label maps) per test batch."""
    from mmengine.runner import Runner
    if data_root:
        cfg.test_dataloader.dataset.data_root = data_root
    loader = Runner.build_dataloader(cfg.test_dataloader)
    batches = []
    for data in loader:
        data = model.data_preprocessor(data, False)
        samples = data['data_samples']
        if model.task == 'classifier':
            target = [int(s.gt_label) for s in samples]
        else:
            target = [s.gt_sem_seg.data[0] for s in samples]
        batches.append((data['inputs'], target))
    return batches


def score(task, outputs, batches, num_classes):
    """top-1 (%) or mIoU (%) of ``outputs`` (logits per batch); mIoU with
    mmseg's own per-image areas (label 255 ignored)."""
    import torch
    if task == 'classifier':
        hits = total = 0
        for logits, (_, target) in zip(outputs, batches):
            hits += int((logits.argmax(1) == torch.tensor(target)).sum())
            total += len(target)
        return 100 * hits / total
    from mmseg.evaluation.metrics import IoUMetric
    inter = union = torch.zeros(num_classes)
    for logits, (_, target) in zip(outputs, batches):
        for pred, gt in zip(logits.argmax(1), target):
            area_inter, area_union, _, _ = IoUMetric.intersect_and_union(
                pred, gt, num_classes, ignore_index=255)
            inter, union = inter + area_inter, union + area_union
    present = union > 0
    return float(100 * (inter[present] / union[present]).mean())


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.config import Config

    from mmvheat.deployment import (
        OnnxModel,
        build_deploy_model,
        export_graph,
        export_onnx,
        quantize_onnx,
        quantize_torch,
        reference_outputs,
    )
    from mmvheat.utils.table import markdown_table
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(require_file(args.config, 'config file'))
    model = build_deploy_model(cfg, require_file(args.checkpoint,
                                                 'checkpoint file'))
    task = model.task
    if task not in ('classifier', 'segmentor'):
        raise ToolError(f'{task} configs are not supported (classifier or '
                        'segmentor)')
    batches = load_batches(cfg, model, args.data_root)
    os.makedirs(args.out_dir, exist_ok=True)
    fp32_path = osp.join(args.out_dir, 'model_fp32.onnx')
    int8_path = osp.join(args.out_dir, 'model_int8.onnx')
    size = tuple(batches[0][0].shape[2:])
    export_onnx(export_graph(model), fp32_path, size, dynamic=True)
    quantize_onnx(fp32_path, int8_path)
    qmodel = quantize_torch(model)
    threads = torch.get_num_threads()

    def torch_fn(m):
        return lambda x: reference_outputs(m, task, x)[0]

    def ort_fn(path):
        session = OnnxModel(path, threads=threads)
        return lambda x: session.run(x)[0]

    variants = {
        'PyTorch fp32': torch_fn(model), 'PyTorch int8': torch_fn(qmodel),
        'ONNX Runtime fp32': ort_fn(fp32_path),
        'ONNX Runtime int8': ort_fn(int8_path)}
    outputs, times = {}, {name: [] for name in variants}
    for _ in range(max(1, args.repeat)):
        for name, fn in variants.items():
            start = time.perf_counter()
            outputs[name] = [fn(x) for x, _ in batches]
            times[name].append(time.perf_counter() - start)
    images = sum(len(x) for x, _ in batches)
    num_classes = outputs['PyTorch fp32'][0].shape[1]
    ref = outputs['PyTorch fp32']
    scale = max(float(r.abs().max()) for r in ref)
    metric = 'top-1 (%)' if task == 'classifier' else 'mIoU (%)'
    rows = []
    base = statistics.median(times['PyTorch fp32'])
    for name, outs in outputs.items():
        drift = max(float((o - r).abs().max()) for o, r in zip(outs, ref))
        median = statistics.median(times[name])
        rows.append([name, f'{score(task, outs, batches, num_classes):.2f}',
                     f'{drift / scale:.2e}', f'{images / median:.1f}',
                     f'{base / median:.2f}x'])
    print(f'{task}, {images} validation images, {threads} threads, '
          f'median of {args.repeat} interleaved passes')
    print(markdown_table(['model', metric, 'max logit drift', 'img/s',
                          'speed vs PyTorch fp32'], rows))


if __name__ == '__main__':
    from mmvheat.deployment import DeployError
    sys.exit(run_tool(main, 'int8_report.py', errors=(DeployError, )))
