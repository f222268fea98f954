"""Compile a vHeat model of a config into an AOTInductor package (.pt2):
the fastest CPU inference path, with PyTorch's own means.

    python tools/deployment/pytorch2aoti.py CONFIG [CHECKPOINT] --out FILE
        [--shape H W] [--batch 1] [--normalize] [--backbone-only]
        [--verify] [--cfg-options k=v ...]

The model of an mmpretrain classifier or mmseg UperNet config (or, with
``--backbone-only``, its vHeat backbone) is deployed at ``--shape`` (the
decay tables become constants), exported with ``torch.export`` and compiled
by AOTInductor (the weights become constants of the package).
The package takes exactly ``--batch`` x 3 x H x W images, normalised as the
config's data preprocessor does unless ``--normalize`` puts mean/std (and
BGR -> RGB) inside it. Load and run it with::

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
    graph = export_graph(model, size, args.normalize, args.backbone_only)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    start = time.perf_counter()
    export_aoti(graph, args.out, size, args.batch)
    print(f'wrote {args.out} ({graph.task}, {args.batch}x3x{size[0]}x'
          f'{size[1]}, {osp.getsize(args.out) / 2**20:.1f} MB) in '
          f'{time.perf_counter() - start:.0f} s')
    if args.verify:
        worst = verify(load_aoti(args.out), model, graph.task, size,
                       args.batch, args.normalize, preprocess_of(model))
        ok = worst <= TOLERANCE
        print(f'max relative error {worst:.2e} '
              f'({"OK" if ok else "ABOVE"} tolerance {TOLERANCE:g})')
        if not ok:
            sys.exit(1)


if __name__ == '__main__':
    sys.exit(run_tool(main, 'pytorch2aoti.py'))
