"""Parameters and FLOPs of vHeat, beside the paper's figures.

    python tools/analysis_tools/get_flops.py [CONFIG [--shape H W]] \
        [--models vheat-t vheat-s vheat-b swin-t ...] [--sizes 224] \
        [--forms deploy train] [--hco-impl matmul|split|fft] \
        [--tasks [det seg]]

Counts with mmengine's FlopAnalyzer (one multiply-add = one FLOP) plus the
handles of :mod:`mmvheat.analysis.flops`. ``deploy`` is the deployed model
(decay tables reused; the paper's convention for 4.6G / 8.5G / 14.9G),
``train`` the training form (each block's ``to_k`` Linear over its FVE
counted too). ``--models`` are model specs (:mod:`mmvheat.analysis.specs`,
as in the benchmark tools), counted as ImageNet classifiers at each of
``--sizes`` (a vHeat backbone is built with ``img_size`` equal to the
size); without a CONFIG they default to vheat-t, vheat-s and vheat-b.
``--tasks`` adds Mask R-CNN (``det``) at 1280x800 and UperNet (``seg``) at
512x2048 built from this repository's configs, one per vHeat spec. CONFIG
counts the model of any config at ``--shape`` and nothing else unless
``--models`` or ``--tasks`` ask for more.

``--hco-impl`` defaults to the model's own implementation (VHeat's default
``split``, or what a CONFIG sets); a spec's ``:IMPL`` overrides it for that
spec. ``split`` counts the multiply-adds the even/odd split does: on axes at
least 256 long it halves the DCT's. The paper's dense count needs
``--hco-impl matmul`` (2 (H + W) multiply-adds per element and channel for
the DCT and its inverse); ``fft`` counts the same dense products. Below 256
(every map of a 224 input) the three agree.

Older spellings still work: ``--config CONFIG``, ``--archs``,
``--resolutions``, and the arch names ``tiny``, ``small``, ``base``.
"""
import argparse
import os.path as osp
import sys

from mmvheat.analysis.specs import add_models_arg, expand_models, model_spec
from mmvheat.utils import (
    ToolError,
    add_debug_arg,
    add_hco_impl_arg,
    add_shape_arg,
    add_sizes_arg,
    hidden_alias,
    require_file,
    run_tool,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# (params M, FLOPs G at 224) as the paper reports them, one figure per model
# whatever the form (the released code's classifiers have 30.85M / 52.22M /
# 92.13M parameters).
PAPER = {'tiny': (29, 4.6), 'small': (50, 8.5), 'base': (87, 14.9)}
DEFAULT_MODELS = ['vheat-t', 'vheat-s', 'vheat-b']
EVERY_MODEL = DEFAULT_MODELS + [f'{f}-{s}' for f in ('swin', 'convnext')
                                for s in 'tsb']
NAMES = {'vheat': 'vHeat', 'swin': 'Swin', 'convnext': 'ConvNeXt'}
# task -> (row name, config, (H, W), paper (params M, FLOPs G) per arch)
TASKS = {
    'det': ('Mask R-CNN vHeat-{}',
            'configs/detection/mask-rcnn_vheat-{}_fpn_1x_coco.py',
            (800, 1280), {'t': (53, 286), 's': (74, 377), 'b': (115, 526)}),
    'seg': ('UperNet vHeat-{}',
            'configs/segmentation/vheat-{}_upernet_8xb2-160k_ade20k-512x512'
            '.py',
            (512, 2048), {'t': (62, 948), 's': (82, 1028),
                          'b': (129, 1219)}),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Parameters and FLOPs of vHeat models')
    parser.add_argument('config', nargs='?', default=None,
                        help='count the model of this config (mmdet, mmseg '
                        'or mmpretrain) at --shape')
    parser.add_argument('--config', dest='config_flag', default=None,
                        help=argparse.SUPPRESS)
    add_shape_arg(parser, default=[800, 1280],
                  help='input size of CONFIG (default: 800 1280)')
    add_models_arg(parser, None, 'ImageNet classifiers to count (default: '
                   'vheat-t vheat-s vheat-b without a CONFIG, none with '
                   "one; 'all' adds Swin and ConvNeXt)")
    hidden_alias(parser, '--archs', dest='models', nargs='+',
                 type=model_spec)
    add_sizes_arg(parser, [224], 'input sizes of the --models, square '
                  '(default: 224)')
    hidden_alias(parser, '--resolutions', dest='sizes', nargs='+', type=int)
    parser.add_argument('--forms', nargs='+', default=['deploy', 'train'],
                        choices=['deploy', 'train'],
                        help="'deploy': decay tables reused (the paper's "
                        "count); 'train': the FVE's to_k Linear counted "
                        'too (default: both)')
    add_hco_impl_arg(parser, 'CONFIG, --tasks and the vHeat --models '
                     "without an :IMPL; 'split' counts the products the "
                     "even/odd split does, 'matmul' (and 'fft') the dense "
                     "DCT products: the paper's count is --hco-impl matmul")
    parser.add_argument('--tasks', nargs='*', choices=list(TASKS),
                        default=None,
                        help='also Mask R-CNN (det, 1280x800) and UperNet '
                        '(seg, 512x2048) from our configs, one per vHeat '
                        'spec of --models (vheat-t/s/b when not given); no '
                        'names: both')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.config and args.config_flag:
        parser.error('give the config once (CONFIG or --config)')
    args.config = args.config or args.config_flag
    del args.config_flag
    if args.tasks == []:
        args.tasks = list(TASKS)
    args.models = expand_models(args.models, EVERY_MODEL)
    if args.models is None and not args.config:
        args.models = list(DEFAULT_MODELS)
    return args


def diff(ours: float, paper) -> str:
    if paper is None:
        return '-'
    return f'{(ours - paper) / paper * 100:+.1f}%'


def row(name, size, form, result, paper=(None, None), impl='') -> list:
    params, flops = result['params'] / 1e6, result['flops'] / 1e9
    notes = [f'hco_impl {impl}'] if impl else []
    if result.get('aux_params'):
        notes.append(f"{(result['params'] - result['aux_params']) / 1e6:.1f}"
                     'M without the auxiliary head')
    return [name, size, form, f'{params:.2f}', f'{flops:.2f}',
            '-' if paper[0] is None else str(paper[0]), diff(params, paper[0]),
            '-' if paper[1] is None else str(paper[1]), diff(flops, paper[1]),
            '; '.join(notes)]


def print_table(rows: list) -> None:
    from mmvheat.utils.table import markdown_table
    head = ['model', 'input', 'form', 'params (M)', 'FLOPs (G)', 'paper M',
            'diff', 'paper G', 'diff', 'note']
    print(markdown_table(head, rows))


def classifier_flops(spec: str, size: int, form: str,
                     hco_impl: str) -> dict:
    """FLOPs of ``spec``'s ImageNet classifier at ``size`` x ``size``:
    vHeat through :func:`~mmvheat.analysis.flops.backbone_flops`, the
    others (and ``:reference``) as the benchmark builds them."""
    import torch

    from mmvheat.analysis.benchmark import build_backbone
    from mmvheat.analysis.classifier import Classifier
    from mmvheat.analysis.flops import backbone_flops, count
    from mmvheat.analysis.specs import parse_spec
    family, arch, impl = parse_spec(spec)
    if family == 'vheat' and impl != 'reference':
        return backbone_flops(arch, size, form, hco_impl)
    model = Classifier(build_backbone(spec, size, deploy=False))
    return count(model, (torch.zeros(1, 3, size, size), ), form)


def main(argv=None):
    args = parse_args(argv)
    from mmvheat.utils import ignore_pkg_resources_deprecation
    ignore_pkg_resources_deprecation()
    from mmvheat.analysis.flops import task_model_flops
    from mmvheat.analysis.specs import parse_spec, spec_impl
    from mmvheat.ops import DEFAULT_IMPL, SPLIT_MIN_LENGTH
    if args.config:
        require_file(args.config, 'config file')
    rows, impls = [], set()
    for spec in args.models or []:
        family, arch, _ = parse_spec(spec)
        vheat = family == 'vheat' and spec_impl(spec) != 'reference'
        impl = spec_impl(spec) or args.hco_impl or DEFAULT_IMPL
        name = (f'{NAMES[family]}-{arch[0].upper()}'
                + ('' if vheat or family != 'vheat' else ' (reference)'))
        for res in args.sizes:
            # one row for models without a deployed form
            for form in args.forms if vheat else args.forms[:1]:
                result = classifier_flops(spec, res, form, impl)
                paper = PAPER[arch] if vheat and res == 224 else (None,
                                                                  None)
                rows.append(row(f'{name} (ImageNet)', f'{res}x{res}',
                                form if vheat else '-', result, paper,
                                impl if vheat else ''))
        if vheat:
            impls.add(impl)
    for task in args.tasks or []:
        name, config, (h, w), paper = TASKS[task]
        for spec in args.models or DEFAULT_MODELS:
            family, arch, _ = parse_spec(spec)
            if family != 'vheat' or spec_impl(spec) == 'reference':
                continue
            key = arch[0]
            cfg = config.format(key if task == 'det' else arch)
            for form in args.forms:
                result = task_model_flops(
                    osp.join(ROOT, cfg), h, w, form,
                    spec_impl(spec) or args.hco_impl)
                impls.add(result['hco_impl'])
                rows.append(row(name.format(key.upper()), f'{w}x{h}', form,
                                result, paper[key], result['hco_impl']))
    if args.config:
        h, w = args.shape
        for form in args.forms:
            result = task_model_flops(args.config, h, w, form, args.hco_impl)
            impls.add(result['hco_impl'])
            rows.append(row(osp.basename(args.config), f'{w}x{h}', form,
                            result, impl=result['hco_impl']))
    if not rows:
        raise ToolError('nothing to count: give a CONFIG, --models or '
                        '--tasks')
    print_table(rows)
    how = {
        'split': 'split: the DCT as the even/odd split does it (on axes at '
                 f'least {SPLIT_MIN_LENGTH} long; dense below)',
        'matmul': 'matmul: the DCT as dense products (the paper convention)',
        'fft': 'fft: the DCT as the dense products it replaces (the paper '
               'convention)'}
    print('FLOPs are multiply-adds (mmengine FlopAnalyzer); '
          + '; '.join(how[i] for i in sorted(impls) if i in how) + '.')
    if 'split' in impls:
        print("The paper's dense DCT count: --hco-impl matmul.")


if __name__ == '__main__':
    sys.exit(run_tool(main, 'get_flops.py'))
