"""Test (evaluate) a checkpoint with an mmpretrain, mmdet or mmseg config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--out-dir DIR] [--show-dir DIR] [--tta] [--cfg-options k=v ...]
        [--launcher pytorch]

``--out`` dumps the raw predictions into one .pkl file (every library);
``--out-dir`` writes a segmentor's predicted masks as PNG files (mmseg's
``output_dir``; what mmseg's own ``--out`` does).

CHECKPOINT is a path or an http(s) URL (downloaded once into the cache, see
mmvheat.download). It must fit the config's model: a missing, unexpected or
mismatched key is an error (mmvheat.engine.StrictLoadHook). Such errors, and
a missing config, data root, annotation file or checkpoint, end with one
error line and exit status 1; --debug (or MMVHEAT_DEBUG=1) shows the
traceback.
"""
import argparse
import sys

from mmvheat.utils import (
    ToolError,
    add_common_args,
    build_runner,
    check_data_paths,
    fetch_checkpoint,
    ignore_pkg_resources_deprecation,
    load_config,
    run_tool,
    set_local_rank,
    teardown_distributed,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a vHeat model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file or http(s) URL')
    parser.add_argument(
        '--out', help='dump the raw predictions into this .pkl file')
    parser.add_argument(
        '--out-dir', help='segmentation: write the predicted masks as PNG '
        'files into this folder')
    parser.add_argument('--show', action='store_true',
                        help='show predictions in a window')
    parser.add_argument('--show-dir', help='save drawn predictions here')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each shown image stays')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (the config\'s '
                        'tta_model and tta_pipeline)')
    add_common_args(parser)
    args = parser.parse_args(argv)
    set_local_rank(args.local_rank)
    return args


def enable_visualization(cfg, args):
    """Turn on the library's visualization hook for --show/--show-dir."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise ToolError('--show/--show-dir need a `visualization` hook in '
                        'default_hooks')
    vis = hooks.visualization
    scope = cfg.get('default_scope')
    vis.interval = 1  # mmseg's and mmpretrain's defaults skip images
    if scope == 'mmpretrain':
        vis.enable = True
        if args.show_dir:
            vis.out_dir = args.show_dir
    else:
        vis.draw = True
        if scope == 'mmseg' and args.show_dir:
            cfg.visualizer.save_dir = args.show_dir
        elif args.show_dir:
            vis.test_out_dir = args.show_dir
    if args.show:
        vis.show = True
        vis.wait_time = args.wait_time


def enable_tta(cfg):
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise ToolError('--tta needs `tta_model` and `tta_pipeline` in '
                        'the config')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def add_result_dump(cfg, out):
    """``--out``: a metric that dumps the raw predictions into one .pkl
    file (mmdet's DumpDetResults, else mmengine's DumpResults)."""
    scope = cfg.get('default_scope')
    if not out.endswith(('.pkl', '.pickle')):
        hint = ('; to write the predicted masks as PNG files use --out-dir '
                'DIR' if scope == 'mmseg' else '')
        raise ToolError(f'--out must be a .pkl file, got {out}{hint}')
    dump = dict(type='DumpDetResults' if scope == 'mmdet' else 'DumpResults',
                out_file_path=out)
    evaluator = cfg.test_evaluator
    cfg.test_evaluator = (list(evaluator) if isinstance(evaluator, list)
                          else [evaluator]) + [dump]


def add_mask_output(cfg, out_dir):
    """``--out-dir``: a segmentor's masks as PNG files (mmseg's
    ``output_dir``), the metrics computed as well."""
    if cfg.get('default_scope') != 'mmseg':
        raise ToolError('--out-dir writes the predicted masks of a '
                        'segmentation (mmseg) config; dump the predictions '
                        'with --out FILE.pkl or draw them with --show-dir')
    evaluators = cfg.test_evaluator
    for evaluator in (evaluators if isinstance(evaluators, list)
                      else [evaluators]):
        if str(evaluator.get('type', '')).endswith('IoUMetric'):
            evaluator.output_dir = out_dir
            evaluator.keep_results = True
            return
    raise ToolError('--out-dir needs an IoUMetric in test_evaluator')


def main(argv=None):
    args = parse_args(argv)
    ignore_pkg_resources_deprecation()
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    check_data_paths(cfg, ['test_dataloader'])
    # before the runner is built: the file exists, a URL is in the cache
    fetch_checkpoint(args.checkpoint, 'CHECKPOINT')
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        enable_tta(cfg)
    if args.out_dir:
        add_mask_output(cfg, args.out_dir)
    if args.out:
        add_result_dump(cfg, args.out)
    runner = build_runner(cfg)
    metrics = runner.test()
    teardown_distributed()
    return metrics


if __name__ == '__main__':
    sys.exit(run_tool(main, 'test.py'))
