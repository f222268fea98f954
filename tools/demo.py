"""The main job, end to end on a CPU: generated data, train, evaluate, draw.

    python tools/demo.py [--tasks det seg cls] [--work-dir work_dirs/demo]
        [--data-root data/demo] [--cfg-options k=v ...]

For each task it creates the demo dataset when missing, trains the demo
config (configs/demo/) with tools/train.py, evaluates the final checkpoint
with tools/test.py (COCO bbox/segm mAP, mIoU, top-1), draws predictions on
validation images into ``<work-dir>/demo_predictions.png`` and prints a
results table. Each task runs in its own process (the three libraries keep
global state).
"""
import argparse
import glob
import os.path as osp
import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from mmvheat.analysis.demo_data import DEMO_TASKS, make_demo_data
from mmvheat.utils import (
    ToolError,
    add_debug_arg,
    ignore_pkg_resources_deprecation,
    run_tool,
)

if TYPE_CHECKING:
    import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CONFIGS = {
    'det': 'configs/demo/mask-rcnn_vheat-demo_fpn_4xb4_shapes-coco.py',
    'seg': 'configs/demo/vheat-demo_upernet_4xb8-1k_shapes-128x128.py',
    'cls': 'configs/demo/vheat-demo_4xb16_shapes-cls.py',
}
# task -> (metric keys for the table, target key, target value, scale)
METRICS = {
    'det': (['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP',
             'coco/segm_mAP_50'], 'coco/bbox_mAP_50', 0.6, 1),
    'seg': (['mIoU', 'mAcc', 'aAcc'], 'mIoU', 0.6, 100),
    'cls': (['accuracy/top1'], 'accuracy/top1', 0.9, 100),
}
TITLES = {'det': 'Mask R-CNN (COCO format)', 'seg': 'UperNet (ADE20K layout)',
          'cls': 'classifier (ImageNet layout)'}


def data_options(task: str, data_root: str) -> list:
    """--cfg-options pointing a demo config at ``data_root``."""
    path = osp.join(data_root, DEMO_TASKS[task][0])
    opts = [f'{loader}.dataset.data_root={path}'
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')]
    if task == 'det':
        ann = osp.join(path, 'annotations', 'instances_val2017.json')
        opts += [f'val_evaluator.ann_file={ann}',
                 f'test_evaluator.ann_file={ann}']
    return opts


def run(cmd: list) -> str:
    """Run a tool, streaming its output (progress, ETA) and keeping it."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if proc.wait() != 0:
        raise ToolError(f'{" ".join(cmd[1:3])} failed (exit '
                        f'{proc.returncode}); see the output above')
    return ''.join(lines)


def parse_metrics(log: str) -> dict:
    """``key: value`` pairs of the last evaluation line of a log."""
    lines = [ln for ln in log.splitlines()
             if re.search(r'(Epoch|Iter)\((test|val)\)', ln) and ':' in ln]
    if not lines:
        raise ToolError('no evaluation results in the log')
    return {k: float(v) for k, v in re.findall(
        r'([\w/]+):\s+(-?[\d.]+)', lines[-1].split(')', 1)[1])}


def latest_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def seg_legend(width: int) -> 'np.ndarray':
    """The segmentation row's legend: the demo classes' colours and the
    uncoloured (ignored or not confident) pixels."""
    from mmengine.config import Config

    from mmvheat.analysis.visualization.panels import DIMMED, legend
    meta = Config.fromfile(osp.join(ROOT, CONFIGS['seg'])).metainfo
    return legend(meta['classes'], meta['palette'], width, extra=[
        ('dimmed: "other" (label 0, ignored) or probability < 0.5', DIMMED)])


def draw_summary(panel_dirs: dict, out: str, per_task: int = 4) -> str:
    """One PNG: a row of drawn validation predictions per task (256 px
    high; the seg and cls panels are drawn at that height)."""
    import cv2
    import numpy as np
    rows = []
    for task, folder in panel_dirs.items():
        files = sorted(glob.glob(osp.join(folder, '**', '*.png'),
                                 recursive=True))
        files += sorted(glob.glob(osp.join(folder, '**', '*.jpg'),
                                  recursive=True))
        tiles = [cv2.imread(f) for f in files[:per_task]]
        tiles = [t if t.shape[0] == 256 else
                 cv2.resize(t, (256 * t.shape[1] // t.shape[0], 256))
                 for t in tiles if t is not None]
        if not tiles:
            continue
        row = np.concatenate(tiles, axis=1)
        label = np.full((30, row.shape[1], 3), 255, np.uint8)
        cv2.putText(label, TITLES[task], (5, 22), cv2.FONT_HERSHEY_SIMPLEX,
                    0.7, (0, 0, 0), 2)
        parts = [label]
        if task == 'seg':
            parts.append(seg_legend(row.shape[1]))
        rows.append(np.concatenate(parts + [row], axis=0))
    if not rows:
        raise ToolError('no drawn predictions found')
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)),
                   constant_values=255) for r in rows]
    cv2.imwrite(out, np.concatenate(rows, axis=0))
    return out


def draw_panels(task: str, config: str, checkpoint: str, data_root: str,
                out_dir: str) -> str:
    """Seg/cls panels drawn at the figure's resolution (their own tool)."""
    run([sys.executable, 'tools/analysis_tools/draw_predictions.py', task,
         config, checkpoint, '--data-root', data_root, '--out-dir', out_dir])
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description='vHeat demo: train and '
                                     'evaluate on generated data (CPU)')
    parser.add_argument('--tasks', nargs='+', choices=list(CONFIGS),
                        default=list(CONFIGS),
                        help='tasks to train and evaluate (default: all)')
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help="mmengine's work dirs, one per task "
                        '(WORK_DIR/<task>: checkpoints, logs), and the '
                        'predictions figure (default: %(default)s)')
    parser.add_argument('--data-root', default='data/demo',
                        help='demo datasets, made here when missing '
                        '(default: %(default)s)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra overrides for every task, e.g. '
                        'train_cfg.max_epochs=1')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    ignore_pkg_resources_deprecation()

    make_demo_data(args.data_root, args.tasks)
    results, show_dirs = {}, {}
    for task in args.tasks:
        start = time.time()
        work = osp.join(args.work_dir, task)
        opts = data_options(task, args.data_root) + args.cfg_options
        print(f'\n==== {task}: training {CONFIGS[task]} ====', flush=True)
        run([sys.executable, 'tools/train.py', CONFIGS[task], '--work-dir',
             work, '--cfg-options', *opts])
        show = osp.abspath(osp.join(work, 'predictions'))
        checkpoint = latest_checkpoint(work)
        print(f'\n==== {task}: testing ====', flush=True)
        # detection draws with mmdet's visualizer (text at image size is
        # legible); seg and cls get panels drawn at the figure's resolution
        log = run([sys.executable, 'tools/test.py', CONFIGS[task],
                   checkpoint, '--work-dir', work, '--cfg-options', *opts] +
                  (['--show-dir', show] if task == 'det' else []))
        if task != 'det':
            show = draw_panels(task, CONFIGS[task], checkpoint,
                               osp.join(args.data_root, DEMO_TASKS[task][0]),
                               show)
        results[task] = (parse_metrics(log), time.time() - start)
        show_dirs[task] = show

    png = draw_summary(show_dirs, osp.join(args.work_dir,
                                           'demo_predictions.png'))
    print('\n| task | metric | value | target | wall time |')
    print('|---|---|---|---|---|')
    for task, (metrics, seconds) in results.items():
        keys, target_key, target, scale = METRICS[task]
        for key in keys:
            value = metrics.get(key, float('nan')) / scale
            goal = f'>= {target}' if key == target_key else ''
            print(f'| {task} | {key} | {value:.3f} | {goal} | '
                  f'{seconds:.0f} s |')
    print(f'\npredictions drawn: {png}; checkpoints and logs: '
          f'{args.work_dir}/<task>/')
    failed = [t for t, (m, _) in results.items()
              if m.get(METRICS[t][1], 0) / METRICS[t][3] < METRICS[t][2]]
    if failed:
        print(f'below target: {failed}')
    return results


if __name__ == '__main__':
    sys.exit(run_tool(main, 'demo.py'))
