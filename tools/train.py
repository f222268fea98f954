"""Train a model from an mmpretrain, mmdet or mmseg config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--no-pretrained] [--cfg-options k=v ...]
        [--launcher pytorch]

CKPT and the config's checkpoints may be paths or http(s) URLs (downloaded
once into the cache, see mmvheat.download).
"""
import argparse
import logging

from mmengine.logging import print_log

from mmvheat.utils import (
    add_common_args,
    build_runner,
    check_data_paths,
    clear_pretrained,
    ignore_pkg_resources_deprecation,
    load_config,
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
    """Apply --amp, --auto-scale-lr, --no-pretrained and --resume to the
    config."""
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print_log('AMP is already enabled in the config',
                      logger='current', level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise RuntimeError('--amp needs an OptimWrapper in the config, '
                               f'got {wrapper}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr = '
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
    runner = build_runner(apply_args(cfg, args))
    runner.train()
    teardown_distributed()

if __name__ == '__main__':
    main()
