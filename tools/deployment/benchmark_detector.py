"""Time a whole Mask R-CNN: PyTorch (mmdet ``predict``) against the ONNX
file in ONNX Runtime, fp32 and int8 (dynamic quantization), one image.

    python tools/deployment/benchmark_detector.py CONFIG [CHECKPOINT]
        [--shape 800 1333] [--repeat 3] [--threads N] [--out-dir DIR]
        [--no-int8] [--random-heads] [--reuse]

The image is a random (H, W) input already resized and normalised, padded
to a multiple of 32 as the data preprocessor pads it: preprocessing
(decoding, resizing, normalising) is excluded from every column. mmdet's
``predict`` is called with ``rescale=False``, which pastes the masks at the
image size; the ONNX columns paste theirs the same way
(``paste_masks``), so every column is image in, pasted masks out. Each
column is the median of ``--repeat`` interleaved runs after a
warm-up run. Without a checkpoint the model is randomly initialised;
``--random-heads`` redraws every weight matrix (backbone included) with
unit gain, and the heads' biases, so that many boxes
pass the score threshold (``max_per_img`` detections reach the mask head,
the full post-processing load) instead of mmdet's init, whose near-uniform
class scores leave no detections. The .onnx files go into ``--out-dir``
(``--work-dir`` is its older spelling).
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import time

from mmvheat.utils import (
    add_debug_arg,
    add_out_dir_arg,
    add_shape_arg,
    positive_int,
    require_file,
    run_tool,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='a Mask R-CNN config with a vHeat '
                        'backbone')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (without '
                        'one the model is randomly initialised)')
    add_shape_arg(parser, default=[800, 1333],
                  help='image size before padding to a multiple of 32 '
                  '(default: 800 1333)')
    parser.add_argument('--repeat', type=positive_int, default=3,
                        help='timed runs per column, interleaved (default: '
                        '%(default)s)')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='torch and ONNX Runtime threads (default: '
                        'torch decides)')
    add_out_dir_arg(parser, 'work_dirs/det_benchmark',
                    'the exported .onnx files', old=['--work-dir'])
    parser.add_argument('--no-int8', action='store_true',
                        help='leave out the int8 (dynamic quantization) '
                        'column')
    parser.add_argument('--random-heads', action='store_true',
                        help='redraw the weights with unit gain so that '
                        'many boxes pass the score threshold (see above)')
    parser.add_argument('--reuse', action='store_true',
                        help='reuse the files of an earlier run in '
                        '--out-dir (same config and options) instead of '
                        'exporting again')
    add_debug_arg(parser)
    return parser.parse_args(argv)


def unit_gain_(model, seed: int = 0) -> None:
    """Redraw weight matrices with std 1/sqrt(fan_in), head biases 0.1."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel()**.5)
            elif not name.startswith('backbone'):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.config import Config

    from mmvheat.deployment import (
        OnnxDetector,
        build_deploy_model,
        export_graph,
        export_onnx,
        metadata_for,
        paste_masks,
        preprocess_of,
        quantize_onnx,
        task_metadata,
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(require_file(args.config, 'config file'))
    model = build_deploy_model(cfg, args.checkpoint)
    if args.random_heads:
        unit_gain_(model)
    h, w = args.shape
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    image = torch.zeros(1, 3, ph, pw)
    image[:, :, :h, :w] = torch.randn(1, 3, h, w,
                                      generator=torch.Generator()
                                      .manual_seed(0))
    os.makedirs(args.out_dir, exist_ok=True)
    fp32 = osp.join(args.out_dir, 'mask_rcnn_fp32.onnx')
    if not (args.reuse and osp.isfile(fp32)):
        start = time.perf_counter()
        graph = export_graph(model)
        export_onnx(graph, fp32, (256, 384), dynamic=True,
                    metadata={**metadata_for(False, preprocess_of(model)),
                              **task_metadata(model, graph)})
        print(f'export (dynamic H/W): {time.perf_counter() - start:.0f} s, '
              f'{osp.getsize(fp32) / 2**20:.0f} MB')
    runners = {}
    from mmdet.structures import DetDataSample
    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.),
                pad_shape=(ph, pw), batch_input_shape=(ph, pw))

    def pytorch():
        with torch.no_grad():
            out = model.predict(image, [DetDataSample(metainfo=meta)],
                                rescale=False)
        return len(out[0].pred_instances)

    runners['PyTorch (mmdet predict)'] = pytorch
    sessions = {'ONNX Runtime fp32': OnnxDetector(fp32, cfg,
                                                  threads=args.threads)}
    if not args.no_int8:
        int8 = osp.join(args.out_dir, 'mask_rcnn_int8.onnx')
        if not (args.reuse and osp.isfile(int8)):
            quantize_onnx(fp32, int8)
        sessions['ONNX Runtime int8 (dynamic)'] = OnnxDetector(
            int8, cfg, threads=args.threads)
    def onnx(session):
        dets, labels, masks = session.raw_outputs(image, (h, w))
        paste_masks(masks, dets[:, :4], h, w)  # as predict(rescale=False)
        return len(labels)

    for name, session in sessions.items():
        runners[name] = (lambda s: lambda: onnx(s))(session)
    times = {name: [] for name in runners}
    counts = {name: run() for name, run in runners.items()}  # warm-up
    for _ in range(args.repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times['PyTorch (mmdet predict)'])
    print(f'\n1x3x{ph}x{pw} input ({h}x{w} image), threads '
          f'{torch.get_num_threads()}, median of {args.repeat} '
          '(preprocessing excluded)')
    print('| runtime | s / image (median) | range | speed-up | detections |')
    print('|---|---|---|---|---|')
    for name, values in times.items():
        med = statistics.median(values)
        print(f'| {name} | {med:.2f} | {min(values):.2f}-{max(values):.2f} '
              f'| {base / med:.2f}x | {counts[name]} |')


if __name__ == '__main__':
    from mmvheat.deployment import DeployError
    sys.exit(run_tool(main, 'benchmark_detector.py', errors=(DeployError, )))
