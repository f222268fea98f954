"""Parameters and FLOPs of vHeat, beside the paper's figures.

    python tools/analysis_tools/get_flops.py [CONFIG [--shape H W]] \
        [--models tiny small base] [--sizes 224] \
        [--forms deploy train] [--hco-impl matmul|split|fft] [--tasks]

Counts with mmengine's FlopAnalyzer (one multiply-add = one FLOP) plus the
handles of :mod:`mmvheat.analysis.flops`. ``deploy`` is the deployed model
(decay tables reused; the paper's convention for 4.6G / 8.5G / 14.9G),
``train`` the training form (each block's ``to_k`` Linear over its FVE
counted too). ``--models`` are the ImageNet backbones, counted at each of
``--sizes`` (the backbone is built with ``img_size`` equal to the size);
without a CONFIG they default to all three. ``--tasks`` adds Mask R-CNN at
1280x800 and UperNet at 512x2048 built from this repository's configs.
CONFIG counts the model of any config at ``--shape`` and nothing else
unless ``--models`` or ``--tasks`` ask for more.

With the default ``--hco-impl matmul`` the DCT counts the dense products
(2 (H + W) multiply-adds per element and channel for the DCT and its
inverse), the paper's convention; ``fft`` counts the same dense products.
``--hco-impl split`` counts the multiply-adds the even/odd split (the
model's default filter) does: on axes at least 256 long it halves them.

Older spellings still work: ``--config CONFIG``, ``--archs``,
``--resolutions``.
"""
import argparse
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# (params M, FLOPs G at 224) as the paper reports them, one figure per model
# whatever the form (the released code's classifiers have 30.85M / 52.22M /
# 92.13M parameters).
PAPER = {'tiny': (29, 4.6), 'small': (50, 8.5), 'base': (87, 14.9)}
ARCHS = list(PAPER)
TASKS = [
    ('Mask R-CNN vHeat-{}',
     'configs/detection/mask-rcnn_vheat-{}_fpn_1x_coco.py',
     (800, 1280), {'t': (53, 286), 's': (74, 377), 'b': (115, 526)}),
    ('UperNet vHeat-{}',
     'configs/segmentation/vheat-{}_upernet_8xb2-160k_ade20k-512x512.py',
     (512, 2048), {'t': (62, 948), 's': (82, 1028), 'b': (129, 1219)}),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Parameters and FLOPs of vHeat models')
    parser.add_argument('config', nargs='?', default=None,
                        help='count the model of this config (mmdet, mmseg '
                        'or mmpretrain) at --shape')
    parser.add_argument('--config', dest='config_flag', default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                        default=[800, 1280],
                        help='input size of CONFIG (default: 800 1280)')
    parser.add_argument('--models', nargs='+', default=None, choices=ARCHS,
                        help='ImageNet backbones to count (default: all '
                        'three without a CONFIG, none with one)')
    parser.add_argument('--archs', dest='models', nargs='+', choices=ARCHS,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument('--sizes', nargs='+', type=int, default=[224],
                        help='input sizes of the ImageNet backbones, '
                        'square (default: 224)')
    parser.add_argument('--resolutions', dest='sizes', nargs='+', type=int,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument('--forms', nargs='+', default=['deploy', 'train'],
                        choices=['deploy', 'train'],
                        help="'deploy': decay tables reused (the paper's "
                        "count); 'train': the FVE's to_k Linear counted "
                        'too (default: both)')
    parser.add_argument('--hco-impl', default='matmul',
                        choices=['matmul', 'split', 'fft'],
                        help="'split': the multiply-adds the even/odd "
                        "split does; 'matmul' and 'fft': the dense DCT "
                        "products (the paper's count)")
    parser.add_argument('--tasks', action='store_true',
                        help='also Mask R-CNN (1280x800) and UperNet '
                        '(512x2048) from our configs, for --models (all '
                        'three when not given)')
    args = parser.parse_args(argv)
    if args.config and args.config_flag:
        parser.error('give the config once (CONFIG or --config)')
    args.config = args.config or args.config_flag
    del args.config_flag
    if args.models is None and not args.config:
        args.models = list(ARCHS)
    return args


def diff(ours: float, paper) -> str:
    if paper is None:
        return '-'
    return f'{(ours - paper) / paper * 100:+.1f}%'


def row(name, size, form, result, paper=(None, None)) -> list:
    params, flops = result['params'] / 1e6, result['flops'] / 1e9
    note = ''
    if result.get('aux_params'):
        note = (f"{(result['params'] - result['aux_params']) / 1e6:.1f}M "
                'without the auxiliary head')
    return [name, size, form, f'{params:.2f}', f'{flops:.2f}',
            '-' if paper[0] is None else str(paper[0]), diff(params, paper[0]),
            '-' if paper[1] is None else str(paper[1]), diff(flops, paper[1]),
            note]


def print_table(rows: list) -> None:
    from mmvheat.utils.table import markdown_table
    head = ['model', 'input', 'form', 'params (M)', 'FLOPs (G)', 'paper M',
            'diff', 'paper G', 'diff', 'note']
    print(markdown_table(head, rows))


def main(argv=None):
    args = parse_args(argv)
    from mmvheat.utils import ignore_pkg_resources_deprecation
    ignore_pkg_resources_deprecation()
    from mmvheat.analysis.flops import backbone_flops, task_model_flops
    from mmvheat.ops import SPLIT_MIN_LENGTH
    rows = []
    for arch in args.models or []:
        for res in args.sizes:
            for form in args.forms:
                result = backbone_flops(arch, res, form, args.hco_impl)
                paper = PAPER[arch]
                rows.append(row(f'vHeat-{arch[0].upper()} (ImageNet)',
                                f'{res}x{res}', form, result,
                                paper if res == 224 else (None, None)))
    if args.tasks:
        for name, config, (h, w), paper in TASKS:
            for arch in args.models or ARCHS:
                key = arch[0]
                cfg = config.format(key if 'detection' in config else arch)
                for form in args.forms:
                    result = task_model_flops(osp.join(ROOT, cfg), h, w, form,
                                              args.hco_impl)
                    rows.append(row(name.format(key.upper()), f'{w}x{h}',
                                    form, result, paper[key]))
    if args.config:
        h, w = args.shape
        for form in args.forms:
            rows.append(row(osp.basename(args.config), f'{w}x{h}', form,
                            task_model_flops(args.config, h, w, form,
                                             args.hco_impl)))
    print_table(rows)
    if args.hco_impl == 'split':
        dct = ('the DCT as the split products do it (even/odd split on '
               f'axes at least {SPLIT_MIN_LENGTH} long)')
    else:
        dct = ('the DCT as dense products (the paper convention; an '
               'FFT-based DCT counts as the dense products it replaces)')
    print(f'FLOPs are multiply-adds (mmengine FlopAnalyzer), {dct}.')


if __name__ == '__main__':
    main()
