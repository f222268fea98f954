"""Export a vHeat model of a config to ONNX, and check it in ONNX Runtime.

    python tools/deployment/pytorch2onnx.py CONFIG [CHECKPOINT] --out FILE
        [--shape H W] [--dynamic] [--opset 18] [--verify] [--normalize]
        [--backbone-only | --features-only] [--batch 1]
        [--cfg-options k=v ...]

What the file computes, by the config's ``default_scope``:

* mmpretrain classifier: images -> logits (B, num_classes);
* mmseg UperNet: images -> whole-image logits (B, num_classes, H, W) (the
  decode head resized to the input, before the argmax);
* mmdet Mask R-CNN: the whole detector, batch 1: ``input`` (1, 3, H, W)
  and ``img_shape`` (2, ) (h, w of the resized image inside the padding)
  -> ``dets`` (1, N, 5), ``labels`` (1, N), ``masks`` (1, N, 28, 28)
  probabilities (backbone, FPN, RPN with NMS, RoIAlign, box head with NMS,
  mask head; standard ONNX ops; see ``mmvheat.deployment.detection``);
  ``--verify`` compares the detections with the export-friendly PyTorch
  graph;
* ``--features-only`` (Mask R-CNN): images -> the FPN feature maps;
* ``--backbone-only``: images -> the vHeat feature maps.

Normalisation: by default the graph does NOT normalise. It takes (B, 3, H,
W) float images already normalised as the config's data preprocessor does
(``(x - mean) / std``, RGB). With ``--normalize`` the mean/std (and the
BGR -> RGB flip of the preprocessor) are inside the graph, which then takes
raw 0-255 pixels in the dataset's channel order. The choice, mean and std
are written in the file's metadata.

``--dynamic``: one file for any batch, H and W (H, W >= 32; odd,
non-square, not multiples of 32): the FVE bicubic resize, the DCT bases and
the decay are computed in the graph. Without it the file takes only
``--shape`` and holds the bases and every block's decay as constants (the
deployed model). ``--verify`` runs the file in ONNX Runtime (CPU) against
the PyTorch model on the same random inputs, at ``--shape`` and, for a
dynamic file, two more sizes, prints the max relative error and exits 1
when it is above 1e-4.
"""
import argparse
import logging
import os
import os.path as osp
import sys
import time

from mmvheat.utils import (
    add_debug_arg,
    add_shape_arg,
    positive_int,
    require_file,
    run_tool,
)

TOLERANCE = 1e-4


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Export a vHeat classifier / UperNet / Mask R-CNN '
        '(backbone + neck) config to ONNX. The graph expects images '
        'normalised by the config\'s mean/std (RGB) unless --normalize puts '
        'the normalisation inside it.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (without '
                        'one the model is randomly initialised, with a '
                        'warning)')
    parser.add_argument('--out', required=True, help='output .onnx file')
    add_shape_arg(parser, help='input size (>= 32) of the example, and the '
                  'only one a fixed file takes; default: the '
                  "backbone's img_size")
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, H and W (tables computed in '
                        'the graph); default: fixed --shape with the '
                        'tables baked in as constants')
    parser.add_argument('--opset', type=int, default=18,
                        help='ONNX opset, >= 18 (default: %(default)s)')
    parser.add_argument('--verify', action='store_true',
                        help='compare ONNX Runtime (CPU) with PyTorch and '
                        'print the max relative error')
    parser.add_argument('--normalize', action='store_true',
                        help='put mean/std normalisation (and BGR->RGB) in '
                        'the graph: it then takes raw pixels')
    only = parser.add_mutually_exclusive_group()
    only.add_argument('--backbone-only', action='store_true',
                      help='export the vHeat backbone alone (feature maps)')
    only.add_argument('--features-only', action='store_true',
                      help='Mask R-CNN: export backbone + FPN only (the '
                      'feature maps), not the whole detector')
    parser.add_argument('--batch', type=positive_int, default=1,
                        help='batch of the example (and of a fixed file)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    add_debug_arg(parser)
    return parser.parse_args(argv)


def verify_detector(graph_path: str, graph, sizes, normalize: bool,
                    preprocess) -> float:
    """ONNX Runtime against the PyTorch detector graph on random images:
    the worst relative box error when the labels agree, else inf."""
    import numpy as np
    import torch

    from mmvheat.deployment import Normalize, OnnxModel
    session = OnnxModel(graph_path)
    norm = Normalize(*preprocess)
    worst = 0.0
    print(f'{"input":>16} | detections (ORT / PyTorch) | max rel box error')
    for h, w in sizes:
        gen = torch.Generator().manual_seed(h * 10007 + w)
        raw = torch.rand(1, 3, h, w, generator=gen) * 255
        images = raw if normalize else norm(raw)
        shape = torch.tensor([float(h), float(w)])
        outs = session.session.run(None, {'input': images.numpy(),
                                          'img_shape': shape.numpy()})
        with torch.no_grad():
            refs = [r.numpy() for r in graph(images, shape)]
        same = outs[1].shape == refs[1].shape and bool(
            (outs[1] == refs[1]).all())
        err = float('inf')
        if same:
            err = float(np.abs(outs[0] - refs[0]).max(initial=0) /
                        max(np.abs(refs[0]).max(initial=0), 1e-12))
        worst = max(worst, err)
        print(f'{f"1x3x{h}x{w}":>16} | {outs[1].shape[1]} / '
              f'{refs[1].shape[1]}{"" if same else " (labels differ)"} | '
              f'{err:.2e}')
    return worst


def verify(graph_path: str, model, task: str, sizes, batch: int,
           normalize: bool, preprocess) -> float:
    import torch

    from mmvheat.deployment import (
        Normalize,
        OnnxModel,
        max_rel_error,
        reference_outputs,
    )
    session = OnnxModel(graph_path)
    norm = Normalize(*preprocess)
    worst = 0.0
    print(f'{"input":>16} | outputs | max rel error (ONNX Runtime vs '
          'PyTorch)')
    for h, w in sizes:
        gen = torch.Generator().manual_seed(h * 10007 + w)
        if normalize:
            raw = torch.rand(batch, 3, h, w, generator=gen) * 255
            images = norm(raw)
        else:
            raw = images = torch.randn(batch, 3, h, w, generator=gen)
        outs = [o.numpy() for o in session.run(raw)]
        refs = reference_outputs(model, task, images)
        err = max_rel_error(outs, refs)
        worst = max(worst, err)
        shapes = ', '.join('x'.join(map(str, o.shape)) for o in outs)
        print(f'{f"{batch}x3x{h}x{w}":>16} | {shapes} | {err:.2e}')
    return worst


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.logging import print_log

    from mmvheat.deployment import (
        DeployError,
        build_deploy_model,
        check_opset,
        check_size,
        export_graph,
        export_onnx,
        metadata_for,
        preprocess_of,
        task_metadata,
        verify_sizes,
    )
    check_opset(args.opset)
    if args.shape:
        check_size(args.shape, '--shape')
    cfg = Config.fromfile(require_file(args.config, 'config file'))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_deploy_model(cfg, args.checkpoint)
    if args.features_only and model.task != 'detector':
        raise DeployError(f'--features-only is for Mask R-CNN configs; '
                          f'this is a {model.task} config (use '
                          '--backbone-only for the backbone alone)')
    size = check_size(args.shape or model.backbone.img_size, '--shape')
    graph = export_graph(model, None if args.dynamic else size,
                         args.normalize, args.backbone_only,
                         args.features_only)
    preprocess = preprocess_of(model)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    start = time.perf_counter()
    export_onnx(graph, args.out, size, args.batch, args.dynamic,
                args.opset, {**metadata_for(args.normalize, preprocess),
                             **task_metadata(model, graph)})
    task = graph.task
    where_normalised = ('inside the graph (raw pixels in)' if args.normalize
                        else 'expected from the caller (normalised RGB in)')
    kind = ('dynamic H/W, batch 1' if task == 'detector'
            else 'dynamic batch/H/W') if args.dynamic else \
        f'fixed {args.batch}x3x{size[0]}x{size[1]}'
    print_log(f'wrote {args.out} ({task}, {kind}, opset {args.opset}, '
              f'{osp.getsize(args.out) / 2**20:.1f} MB) in '
              f'{time.perf_counter() - start:.0f} s; normalisation '
              f'{where_normalised}',
              logger='current', level=logging.INFO)
    if args.verify and task == 'detector':
        worst = verify_detector(args.out, graph,
                                verify_sizes(size, args.dynamic),
                                args.normalize, preprocess)
    elif args.verify:
        worst = verify(args.out, model, task,
                       verify_sizes(size, args.dynamic), args.batch,
                       args.normalize, preprocess)
    if args.verify:
        ok = worst <= TOLERANCE
        print(f'max relative error {worst:.2e} '
              f'({"OK" if ok else "ABOVE"} tolerance {TOLERANCE:g})')
        if not ok:
            sys.exit(1)


if __name__ == '__main__':
    from mmvheat.deployment import DeployError
    sys.exit(run_tool(main, 'pytorch2onnx.py', errors=(DeployError, )))
