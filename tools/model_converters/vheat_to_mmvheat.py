"""Convert vHeat weights (the authors', or any other format) for mmvheat /
mmpretrain.

    python tools/model_converters/vheat_to_mmvheat.py SRC DST [--ema]
        [--img-size 512] [--backbone-only] [--fve-mode pad|bicubic]
        [--publish]

Without --backbone-only the output is an mmpretrain ImageClassifier
checkpoint (backbone.*, head.fc.*) that mmpretrain's tools load directly; with
it, bare backbone keys for a detection/segmentation ``init_cfg`` (use
--img-size 512 to zero-pad the FVEs to the authors' downstream grid). A DST
ending in .safetensors is written in that format. A source that does not
hold a whole vHeat backbone is refused (exit 1), naming what it holds.
"""
import argparse
import sys

from mmvheat.checkpoint import FVE_MODES
from mmvheat.convert import convert_checkpoint
from mmvheat.utils import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a vHeat checkpoint to mmvheat/mmengine format')
    parser.add_argument(
        'src', help='a vHeat weight file of any format (the authors\', '
        'mmengine, timm, bare, .safetensors) or an http(s) URL')
    parser.add_argument(
        'dst', help='output file: .pth, or .safetensors for that format')
    parser.add_argument('--ema', action='store_true',
                        help="take the file's EMA weights (the authors' "
                        "model_ema, timm's state_dict_ema, the average "
                        "mmengine's EMAHook saves)")
    parser.add_argument('--img-size', type=int, default=None,
                        help='adapt the FVEs to this input size\'s grid')
    parser.add_argument('--backbone-only', action='store_true',
                        help='write bare backbone keys (downstream init)')
    parser.add_argument('--fve-mode', choices=FVE_MODES, default='pad',
                        help='how FVEs are adapted (default: zero-pad, as '
                        'the authors did)')
    parser.add_argument('--publish', action='store_true',
                        help='append a sha256 prefix to the file name')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of an error')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    path, report = convert_checkpoint(
        args.src, args.dst, use_ema=args.ema, img_size=args.img_size,
        backbone_only=args.backbone_only, fve_mode=args.fve_mode,
        publish=args.publish)
    print(f'source format: {report["format"]}'
          f'{" (model_ema)" if args.ema else ""}')
    print(f'mapped: {len(report["kept"])} tensors')
    print(f'dropped: {report["dropped"] or "none"}')
    print(f'resized: {report["adapted"] or "none"}')
    print(f'saved: {path}')


if __name__ == '__main__':
    sys.exit(run_tool(main, 'vheat_to_mmvheat.py'))
