"""Draw a segmentor's or classifier's predictions on validation images.

    python tools/analysis_tools/draw_predictions.py {seg,cls} CONFIG CHECKPOINT
        --data-root DIR --out-dir DIR [--num 4] [--height 256]
        [--min-confidence 0.5]

``seg``: an ADE20K-layout folder (``images/validation``,
``annotations/validation``; label 0 = "other", ignored). Each panel shows the
ground truth beside the prediction; only labelled pixels are coloured, and
in the prediction only those whose softmax probability reaches
``--min-confidence``. ``cls``: an ImageNet-style folder (``val/<class>/``);
truth and prediction are written at the output resolution.
"""
import argparse
import glob
import os
import os.path as osp
import sys

import numpy as np

from mmvheat.analysis.visualization.panels import (
    IGNORE_INDEX,
    classification_panel,
    segmentation_panel,
)
from mmvheat.checkpoint import load_weights
from mmvheat.utils import (
    add_debug_arg,
    add_out_dir_arg,
    ignore_pkg_resources_deprecation,
    positive_int,
    require_file,
    run_tool,
)


def _files(pattern: str, what: str) -> list:
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f'no {what} found ({pattern})')
    return files


def draw_segmentation(config: str, checkpoint: str, data_root: str,
                      num: int, height: int, min_confidence: float) -> list:
    """Panels for the first ``num`` validation images of an ADE20K-layout
    folder, with mmseg's own ``init_model``/``inference_model``."""
    import cv2
    import torch
    from mmseg.apis import inference_model, init_model
    model = init_model(config, checkpoint, device='cpu')
    # mmseg loads leniently; load again through mmvheat's checked loader,
    # so a file that does not fit is refused instead of drawn
    load_weights(model, checkpoint, 'test')
    palette = model.dataset_meta['palette']
    panels = []
    images = _files(osp.join(data_root, 'images', 'validation', '*.jpg'),
                    'validation images')
    for path in images[:num]:
        name = osp.splitext(osp.basename(path))[0]
        label = cv2.imread(osp.join(data_root, 'annotations', 'validation',
                                    name + '.png'), cv2.IMREAD_UNCHANGED)
        if label is None:
            raise FileNotFoundError(f'no annotation for {path}')
        # reduce_zero_label: 0 ("other") -> ignored, k -> k - 1
        gt = np.where(label == 0, IGNORE_INDEX, label.astype(np.int64) - 1)
        result = inference_model(model, path)
        prob = torch.softmax(result.seg_logits.data.float(), dim=0)
        confidence, pred = prob.max(dim=0)
        panels.append(segmentation_panel(cv2.imread(path), gt, pred.numpy(),
                                         confidence.numpy(), palette, height,
                                         min_confidence))
    return panels


def draw_classification(config: str, checkpoint: str, data_root: str,
                        num: int, height: int) -> list:
    """Panels for ``num`` validation images (one class after another) of an
    ImageNet-style folder, with mmpretrain's inferencer."""
    import cv2
    from mmpretrain.apis import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(config, pretrained=checkpoint,
                                               device='cpu')
    load_weights(inferencer.model, checkpoint, 'test')  # checked, as above
    by_class = [_files(osp.join(d, '*'), f'images in {d}') for d in
                _files(osp.join(data_root, 'val', '*'), 'class folders')]
    picks = [files[i] for i in range(num) for files in by_class
             if i < len(files)][:num]
    results = inferencer(picks)
    return [classification_panel(cv2.imread(path),
                                 osp.basename(osp.dirname(path)),
                                 res['pred_class'], res['pred_score'], height)
            for path, res in zip(picks, results)]


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('task', choices=['seg', 'cls'],
                        help="'seg': a segmentor on an ADE20K-layout folder; "
                        "'cls': a classifier on an ImageNet-style folder")
    parser.add_argument('config', help='config of the model')
    parser.add_argument('checkpoint', help='weights of the model')
    parser.add_argument('--data-root', required=True,
                        help='the dataset folder of the task')
    add_out_dir_arg(parser, None, 'the panels (TASK_NN.png)', required=True)
    parser.add_argument('--num', type=positive_int, default=4,
                        help='validation images to draw (default: '
                        '%(default)s)')
    parser.add_argument('--height', type=positive_int, default=256,
                        help='panel height in pixels (text is drawn at it)')
    parser.add_argument('--min-confidence', type=float, default=0.5,
                        help='seg: leave predictions below it uncoloured')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    ignore_pkg_resources_deprecation()
    require_file(args.config, 'config file')
    require_file(args.checkpoint, 'checkpoint file')
    if not osp.isdir(args.data_root):
        raise FileNotFoundError(f'data root not found: {args.data_root}')
    if args.task == 'seg':
        panels = draw_segmentation(args.config, args.checkpoint,
                                   args.data_root, args.num, args.height,
                                   args.min_confidence)
    else:
        panels = draw_classification(args.config, args.checkpoint,
                                     args.data_root, args.num, args.height)
    import cv2
    os.makedirs(args.out_dir, exist_ok=True)
    paths = []
    for i, panel in enumerate(panels):
        paths.append(osp.join(args.out_dir, f'{args.task}_{i:02d}.png'))
        cv2.imwrite(paths[-1], panel)
    print(f'{len(paths)} panels written to {args.out_dir}')
    return paths


if __name__ == '__main__':
    sys.exit(run_tool(main, 'draw_predictions.py'))
