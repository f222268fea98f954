"""Generate the demo datasets (deterministic, seconds).

    python tools/make_demo_data.py [--root data/demo] [--tasks det seg cls]
        [--num-train 300] [--num-val 60] [--seed 0] [--force]

Writes ROOT/shapes_coco (COCO instances), ROOT/shapes_ade (ADE20K layout) and
ROOT/shapes_cls (ImageNet-style folders), the locations configs/demo/ use.
"""
import argparse
import os.path as osp
import shutil
import time

from mmvheat.analysis.demo_data import (make_ade20k, make_coco,
                                        make_imagenet)

# task -> (folder under --root, generator, image size, default counts)
TASKS = {
    'det': ('shapes_coco', make_coco, (128, 128), (300, 60)),
    'seg': ('shapes_ade', make_ade20k, (128, 128), (300, 60)),
    'cls': ('shapes_cls', make_imagenet, (64, 64), (400, 100)),
}


def make_demo_data(root: str = 'data/demo', tasks=tuple(TASKS),
                   num_train=None, num_val=None, seed: int = 0,
                   force: bool = False) -> dict:
    """Create the datasets of ``tasks`` under ``root`` unless present.

    Returns:
        dict: task -> folder.
    """
    out = {}
    for task in tasks:
        folder, make, size, (n_train, n_val) = TASKS[task]
        path = osp.join(root, folder)
        out[task] = path
        if osp.isdir(path) and not force:
            print(f'{task}: {path} exists, kept (--force to regenerate)')
            continue
        shutil.rmtree(path, ignore_errors=True)
        start = time.time()
        make(path, num_train or n_train, num_val or n_val, size=size,
             seed=seed)
        print(f'{task}: wrote {path} in {time.time() - start:.1f} s')
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description='Generate demo datasets')
    parser.add_argument('--root', default='data/demo')
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS),
                        default=list(TASKS))
    parser.add_argument('--num-train', type=int, default=None)
    parser.add_argument('--num-val', type=int, default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='regenerate existing datasets')
    args = parser.parse_args(argv)
    make_demo_data(args.root, args.tasks, args.num_train, args.num_val,
                   args.seed, args.force)


if __name__ == '__main__':
    main()
