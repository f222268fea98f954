"""Train a model from an mmpretrain, mmdet or mmseg config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--compile] [--auto-scale-lr] [--no-pretrained]
        [--cfg-options k=v ...] [--launcher pytorch]

``--compile`` runs mmengine's train step under ``torch.compile`` (the
config's ``compile=True``), with the inductor options that let it follow
changing input sizes (:data:`mmvheat.utils.runner.COMPILE_OPTIONS`).

CKPT and the config's checkpoints may be paths or http(s) URLs (downloaded
once into the cache, see mmvheat.download). A missing config, data root,
annotation file or checkpoint, an offline download or a checkpoint that does
not fit the model ends with one error line and exit status 1; --debug (or
MMVHEAT_DEBUG=1) shows the traceback.
"""
import argparse
import logging
import sys

from mmengine.logging import print_log

from mmvheat.utils import (
    ToolError,
    add_common_args,
    build_runner,
    check_data_paths,
    check_pretrained,
    clear_pretrained,
    compile_settings,
    fetch_checkpoint,
    ignore_pkg_resources_deprecation,
    load_config,
    run_tool,
    set_local_rank,
    teardown_distributed,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a vHeat model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT (a path or URL), or from the latest '
        'checkpoint in the work dir when no path is given')
    parser.add_argument(
        '--amp', action='store_true', help='mixed precision training')
    parser.add_argument(
        '--compile', action='store_true',
        help='torch.compile the train step (mmengine\'s compile=True)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual over the config\'s base batch size')
    parser.add_argument(
        '--no-pretrained',
        action='store_true',
        help='train from scratch: ignore the pretrained weights the config '
        'names in its init_cfg (its `checkpoint`)')
    add_common_args(parser)
    args = parser.parse_args(argv)
    set_local_rank(args.local_rank)
    return args


def apply_args(cfg, args):
    """Apply --amp, --compile, --auto-scale-lr, --no-pretrained and
    --resume to the config."""
    if args.amp:
        from mmengine.device import get_device
        if get_device() == 'cpu':
            raise ToolError(
                "--amp uses mmengine's AmpOptimWrapper, which needs a GPU "
                '(or an NPU, MLU or MUSA device); none is available. On a '
                'CPU train in fp32, or compile the model with --compile')
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print_log('AMP is already enabled in the config',
                      logger='current', level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise ToolError('--amp needs an OptimWrapper in the config, '
                            f'got {wrapper}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.compile and not cfg.get('compile'):
        cfg.compile = compile_settings(True)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ToolError('--auto-scale-lr needs `auto_scale_lr = '
                            'dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True
    if args.no_pretrained:
        cleared = clear_pretrained(cfg.model)
        print_log('--no-pretrained: training from scratch; not loading '
                  + ('; '.join(cleared) if cleared else
                     'anything (the config names no pretrained weights)'),
                  logger='current', level=logging.WARNING)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    ignore_pkg_resources_deprecation()
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    check_data_paths(cfg, ['train_dataloader', 'val_dataloader'])
    cfg = apply_args(cfg, args)
    # cheap checks before the runner is built: files exist, URLs cached
    check_pretrained(cfg)
    if cfg.get('load_from'):
        fetch_checkpoint(cfg.load_from,
                         '--resume' if cfg.get('resume') else 'load_from')
    runner = build_runner(cfg)
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    sys.exit(run_tool(main, 'train.py'))
