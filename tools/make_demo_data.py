"""Generate the demo datasets (deterministic, seconds).

    python tools/make_demo_data.py [--data-root data/demo]
        [--tasks det seg cls] [--num-train 300] [--num-val 60] [--seed 0]
        [--force]

Writes DATA_ROOT/shapes_coco (COCO instances), DATA_ROOT/shapes_ade (ADE20K
layout) and DATA_ROOT/shapes_cls (ImageNet-style folders), the locations
configs/demo/ use (``tools/demo.py --data-root`` is the same folder). The
generators live in :mod:`mmvheat.analysis.demo_data`. ``--root`` is the
older spelling of ``--data-root``.
"""
import argparse
import sys

from mmvheat.analysis.demo_data import DEMO_TASKS, make_demo_data
from mmvheat.utils import add_debug_arg, hidden_alias, run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Generate demo datasets')
    parser.add_argument('--data-root', default='data/demo',
                        help='folder of the datasets, one sub-folder per '
                        'task (default: %(default)s)')
    hidden_alias(parser, '--root', dest='data_root')
    parser.add_argument('--tasks', nargs='+', choices=list(DEMO_TASKS),
                        default=list(DEMO_TASKS),
                        help='datasets to make (default: all)')
    parser.add_argument('--num-train', type=int, default=None,
                        help='training images per task (default: 300 for '
                        'det and seg, 400 for cls)')
    parser.add_argument('--num-val', type=int, default=None,
                        help='validation images per task (default: 60 for '
                        'det and seg, 100 for cls)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the generators (default: %(default)s)')
    parser.add_argument('--force', action='store_true',
                        help='regenerate existing datasets')
    add_debug_arg(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    make_demo_data(args.data_root, args.tasks, args.num_train, args.num_val,
                   args.seed, args.force)


if __name__ == '__main__':
    sys.exit(run_tool(main, 'make_demo_data.py'))
