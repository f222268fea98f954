"""Seeing the heat: figures of what vHeat's Heat Conduction Operators do.

    python tools/analysis_tools/visualize_heat.py CONFIG [CHECKPOINT] \\
        --img IMG --out-dir DIR [--shape 224 | --shape H W] \\
        [--blocks 0.0 2.5 3.1] [--points 0.5,0.5 0.2,0.2] [--channels 0 5] \\
        [--impulse-scale linear|log] \\
        [--erf-point 0.5,0.5] [--erf-compare swin [--compare-checkpoint P]] \\
        [--figures impulse conductivity features erf] [--grid image|fve] \\
        [--device cpu] [--dpi 100] [--cfg-options k=v ...]

Writes into DIR (PREFIX defaults to ``heat_``):

* ``PREFIX impulse.png`` - impulse responses of the chosen blocks' heat
  filter (DCT -> learned decay -> IDCT, exact: the step is linear and
  input-independent) at several source points;
* ``PREFIX conductivity.png`` - the learned k per frequency of every block;
* ``PREFIX features.png`` - each stage's output over the image (channel norm
  and PCA to RGB);
* ``PREFIX erf.png`` - effective receptive field of one output location per
  stage, optionally next to mmpretrain's Swin-T.

Without a checkpoint the backbone is randomly initialised (a warning says
so). The model runs at any image size.
"""
import argparse
import logging
import math
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import DictAction

from mmvheat.utils import (
    ToolError,
    add_debug_arg,
    add_out_dir_arg,
    hidden_alias,
    run_tool,
)

FIGURES = ('impulse', 'conductivity', 'features', 'erf')
DEFAULT_POINTS = ('0.5,0.5', '0.2,0.2', '0.0,0.5')


def rel_point(text: str) -> Tuple[float, float]:
    """argparse type: ``'Y,X'`` with both in [0, 1]."""
    try:
        y, x = (float(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected Y,X relative coordinates like 0.5,0.5, got {text!r}'
        ) from None
    if not (0 <= y <= 1 and 0 <= x <= 1):
        raise argparse.ArgumentTypeError(
            f'relative coordinates must lie in [0, 1], got {text!r}')
    return y, x


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        description='Visualise the heat conduction of a vHeat backbone')
    parser.add_argument('config', help='config with a vHeat backbone')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='weights (any vHeat format); omitted: random init')
    parser.add_argument('--img', required=True, help='input image')
    add_out_dir_arg(parser, 'work_dirs/visualize_heat', 'the PNG files')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[224],
        help='input size: one int is the shorter side, aspect kept (0: keep '
        'the image size); two ints a fixed H W. Defaults to 224')
    hidden_alias(parser, '--img-size', dest='shape', type=int, nargs='+')
    parser.add_argument(
        '--blocks',
        nargs='+',
        default=None,
        help='blocks as STAGE.BLOCK for the impulse responses, e.g. 0.0 2.5;'
        ' defaults to the last block of each stage')
    parser.add_argument(
        '--points',
        type=rel_point,
        nargs='+',
        default=[rel_point(p) for p in DEFAULT_POINTS],
        help='impulse source points as relative Y,X in [0, 1]; defaults to ' +
        ' '.join(DEFAULT_POINTS))
    parser.add_argument(
        '--channels',
        type=int,
        nargs='+',
        default=None,
        help='average impulse responses and k over these channels only '
        '(defaults to all channels)')
    parser.add_argument(
        '--impulse-scale',
        choices=('linear', 'log'),
        default='linear',
        help="colour scale of the impulse responses; 'log' shows faint "
        "long-range conduction. Defaults to 'linear'")
    parser.add_argument(
        '--grid',
        choices=('image', 'fve'),
        default='image',
        help="grid of the impulse and k maps: each stage's feature-map size "
        "for this image ('image', what the forward pass uses) or the FVE's "
        "own grid ('fve'). Defaults to 'image'")
    parser.add_argument(
        '--erf-point',
        type=rel_point,
        default=(0.5, 0.5),
        help='output location of the ERF as relative Y,X. Defaults to the '
        'centre')
    parser.add_argument(
        '--erf-compare',
        choices=('none', 'swin'),
        default='none',
        help="also compute the ERF of mmpretrain's Swin-T (needs mmpretrain)")
    parser.add_argument(
        '--compare-checkpoint',
        default=None,
        help='mmpretrain checkpoint for the Swin-T comparison; omitted: '
        'random init')
    parser.add_argument('--figures',
                        nargs='+',
                        choices=FIGURES,
                        default=list(FIGURES),
                        help='which figures to make. Defaults to all')
    parser.add_argument('--prefix',
                        default='heat_',
                        help="file name prefix. Defaults to 'heat_'")
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--dpi', type=int, default=100, help='PNG dpi')
    parser.add_argument('--seed',
                        type=int,
                        default=0,
                        help='seed of the random init (no checkpoint)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.backbone.img_size=256')
    add_debug_arg(parser)
    return parser


def _feature_size(side: int, stage: int) -> int:
    """Side of stage ``stage``'s map: the stem and every downsample halve,
    rounding up."""
    for _ in range(stage + 2):
        side = math.ceil(side / 2)
    return side


def _check_channels(parser: argparse.ArgumentParser,
                    channels: Optional[Sequence[int]],
                    dims: Sequence[int]) -> None:
    if channels is None:
        return
    limit = min(dims)
    bad = [c for c in channels if not 0 <= c < limit]
    if bad:
        parser.error(f'--channels {bad} out of range: every stage has '
                     f'channels 0..{limit - 1} (stage widths {list(dims)})')


def main(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments; defaults to ``sys.argv``.

    Returns:
        dict[str, str]: Figure name -> written PNG path.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from mmvheat.utils import ignore_pkg_resources_deprecation
    ignore_pkg_resources_deprecation()
    if len(args.shape) > 2 or min(args.shape) < 0:
        parser.error('--shape takes one size (the shorter side, 0: the '
                     f'image\'s own) or H W, got {args.shape}')
    if not osp.isfile(args.img):
        parser.error(f'image file not found: {args.img}')
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint file not found: {args.checkpoint}')

    from mmengine.logging import print_log

    from mmvheat.analysis import visualization as vis
    from mmvheat.utils import load_config

    cfg = load_config(args.config, args.cfg_options)
    try:
        backbone = vis.build_vheat_backbone(cfg,
                                            args.checkpoint,
                                            args.device,
                                            seed=args.seed)
    except ValueError as err:  # no vHeat backbone in the config
        raise ToolError(f'{args.config}: {err}') from err
    depths, dims = list(backbone.depths), list(backbone.dims)
    try:
        blocks = (vis.parse_block_ids(args.blocks, depths)
                  if args.blocks else vis.default_block_ids(depths))
        image = vis.load_image(args.img, args.shape)
    except ValueError as err:
        parser.error(str(err))
    _check_channels(parser, args.channels, dims)
    mean, std = vis.normalization(cfg)
    inputs = vis.image_to_tensor(image, mean, std, args.device)
    what = ('mean over channels' if args.channels is None else
            f'mean over channels {args.channels}')

    def grid(stage: int) -> Tuple[int, int]:
        if args.grid == 'fve':
            return tuple(backbone.freq_embed[stage].shape[:2])
        return (_feature_size(image.shape[0],
                              stage), _feature_size(image.shape[1], stage))

    os.makedirs(args.out_dir, exist_ok=True)
    written = {}

    def save(name: str, fig) -> None:
        path = osp.join(args.out_dir, f'{args.prefix}{name}.png')
        written[name] = vis.save_figure(fig, path, dpi=args.dpi)
        print_log(f'visualize_heat: wrote {path}', logger='current')

    if 'impulse' in args.figures:
        responses, points = {}, {}
        for stage, block in blocks:
            cells = vis.grid_points(args.points, grid(stage))
            resp = vis.block_impulse_response(backbone, stage, block, cells,
                                              grid(stage))
            responses[(stage,
                       block)] = vis.reduce_channels(resp, args.channels)
            points[(stage, block)] = cells
        save(
            'impulse',
            vis.plot_impulse_responses(responses,
                                       points,
                                       what,
                                       scale=args.impulse_scale))

    if 'conductivity' in args.figures:
        kmaps = {
            (i, j):
            vis.reduce_channels(vis.conductivity(backbone, i, j, grid(i)),
                                args.channels)
            for i, depth in enumerate(depths)
            for j in range(depth)
        }
        save('conductivity', vis.plot_conductivity(kmaps, what))

    if 'features' in args.figures:
        stages = backbone.out_indices
        raw = vis.stage_features(backbone, inputs, before_norm=True)
        outs = vis.stage_features(backbone, inputs)
        save(
            'features',
            vis.plot_features(image, list(zip(stages, raw)),
                              list(zip(stages, outs))))

    if 'erf' in args.figures:
        models = {'vHeat': backbone}
        if args.erf_compare == 'swin':
            try:
                models['Swin-T'] = vis.build_swin(
                    'tiny', args.compare_checkpoint).to(args.device)
            except ImportError as err:
                print_log(f'visualize_heat: no Swin comparison: {err}',
                          logger='current',
                          level=logging.WARNING)
        erfs = {}
        for name, model in models.items():
            maps = vis.effective_receptive_field(model, inputs, args.erf_point)
            erfs[name] = [(i, erf, cell, size)
                          for i, (erf, cell, size) in enumerate(maps)]
        save('erf', vis.plot_erf(image, erfs))
    return written


if __name__ == '__main__':
    sys.exit(run_tool(main, 'visualize_heat.py'))
