"""Compile a vHeat model of a config into an AOTInductor package (.pt2):
the fastest CPU inference path, with PyTorch's own means.

    python tools/deployment/pytorch2aoti.py CONFIG [CHECKPOINT] --out FILE
        [--shape H W] [--batch 1] [--dynamic] [--max-size 1024]
        [--normalize] [--backbone-only] [--verify] [--cfg-options k=v ...]

The model of an mmpretrain classifier or mmseg UperNet config (or, with
``--backbone-only``, its vHeat backbone) is deployed at ``--shape`` (the
decay tables become constants), exported with ``torch.export`` and compiled
by AOTInductor (the weights become constants of the package).
The package takes exactly ``--batch`` x 3 x H x W images, normalised as the
config's data preprocessor does unless ``--normalize`` puts mean/std (and
BGR -> RGB) inside it. ``--dynamic`` exports the undeployed model with named
dims instead: one package for any H and W from 33 to ``--max-size`` (the
decay tables are computed in the graph; ``--shape`` is the example size).
Load and run it with::

    import torch
    model = torch._inductor.aoti_load_package('vheat-t.pt2')
    logits = model(images)

``--verify`` compares the package with the PyTorch model on random images,
prints the max relative error and exits 1 above 1e-4. Mask R-CNN: export
the whole detector to ONNX (``pytorch2onnx.py``) or its backbone here.
"""
import argparse
import os
import os.path as osp
import sys
import time

from mmvheat.utils import add_debug_arg, add_shape_arg, require_file, run_tool

TOLERANCE = 1e-4


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Compile a vHeat classifier / UperNet config (or its '
        'backbone) into an AOTInductor package for fast CPU inference.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (without '
                        'one the model is randomly initialised, with a '
                        'warning)')
    parser.add_argument('--out', required=True, help='output .pt2 file')
    add_shape_arg(parser, help='input size (>= 32), the only one the package '
                  "takes; default: the backbone's img_size")
    parser.add_argument('--batch', type=int, default=1,
                        help='batch the package takes (default: 1)')
    parser.add_argument('--dynamic', action='store_true',
                        help='one package for any H and W from 33 to '
                        '--max-size (default: the fixed --shape)')
    parser.add_argument('--max-size', type=int, default=1024,
                        help='largest H and W of a --dynamic package '
                        '(default: 1024)')
    parser.add_argument('--normalize', action='store_true',
                        help='put mean/std normalisation (and BGR->RGB) in '
                        'the package: it then takes raw pixels')
    parser.add_argument('--backbone-only', action='store_true',
                        help='compile the vHeat backbone alone (feature '
                        'maps)')
    parser.add_argument('--verify', action='store_true',
                        help='compare the package with PyTorch and print '
                        'the max relative error')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    add_debug_arg(parser)
    return parser.parse_args(argv)


def verify(package, model, task: str, size, batch: int, normalize: bool,
           preprocess) -> float:
    """Max relative error of the package against the PyTorch model."""
    import torch

    from mmvheat.deployment import Normalize, max_rel_error, reference_outputs
    gen = torch.Generator().manual_seed(size[0] * 10007 + size[1])
    raw = torch.rand(batch, 3, *size, generator=gen) * 255
    images = Normalize(*preprocess)(raw)
    with torch.no_grad():
        outs = package(raw if normalize else images)
    refs = reference_outputs(model, task, images)
    return max_rel_error([o.numpy() for o in outs], refs)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from mmvheat.deployment import (
        EXPORT_MIN_SIZE,
        DeployError,
        build_deploy_model,
        check_size,
        export_aoti,
        export_graph,
        load_aoti,
        preprocess_of,
    )
    if args.shape:
        check_size(args.shape, '--shape')
    if args.batch < 1:
        raise DeployError(f'--batch must be >= 1, got {args.batch}')
    cfg = Config.fromfile(require_file(args.config, 'config file'))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_deploy_model(cfg, args.checkpoint)
    if model.task == 'detector' and not args.backbone_only:
        raise DeployError(
            'pytorch2aoti compiles classifiers, UperNet and backbones; '
            'for the whole Mask R-CNN use pytorch2onnx.py, or add '
            '--backbone-only')
    size = check_size(args.shape or model.backbone.img_size, '--shape')
    max_size = None
    if args.dynamic:
        max_size = args.max_size
        if not EXPORT_MIN_SIZE <= min(size) <= max(size) <= max_size:
            raise DeployError(
                f'--dynamic takes H and W from {EXPORT_MIN_SIZE} to '
                f'--max-size ({max_size}); the example --shape '
                f'{size[0]} {size[1]} is outside')
    graph = export_graph(model, None if args.dynamic else size,
                         args.normalize, args.backbone_only)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    start = time.perf_counter()
    export_aoti(graph, args.out, size, args.batch, max_size=max_size)
    shape = (f'{args.batch}x3xHxW, H and W {EXPORT_MIN_SIZE}-{max_size}'
             if args.dynamic else f'{args.batch}x3x{size[0]}x{size[1]}')
    print(f'wrote {args.out} ({graph.task}, {shape}, '
          f'{osp.getsize(args.out) / 2**20:.1f} MB) in '
          f'{time.perf_counter() - start:.0f} s')
    if args.verify:
        package = load_aoti(args.out)
        sizes = [size]
        if args.dynamic:  # and one size the example did not fix
            sizes.append((max(EXPORT_MIN_SIZE, size[0] - 13),
                          min(max_size, size[1] + 7)))
        worst = max(
            verify(package, model, graph.task, s, args.batch,
                   args.normalize, preprocess_of(model)) for s in sizes)
        ok = worst <= TOLERANCE
        print(f'max relative error {worst:.2e} '
              f'({"OK" if ok else "ABOVE"} tolerance {TOLERANCE:g})')
        if not ok:
            sys.exit(1)


if __name__ == '__main__':
    from mmvheat.deployment import DeployError
    sys.exit(run_tool(main, 'pytorch2aoti.py', errors=(DeployError, )))
