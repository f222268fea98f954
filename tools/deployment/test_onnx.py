"""Evaluate an exported ONNX file on a config's test set, as tools/test.py
evaluates the PyTorch model.

    python tools/deployment/test_onnx.py CONFIG FILE [--cfg-options k=v ...]
        [--out metrics.json] [--threads N] [--max-batches N]

Builds the config's own ``test_dataloader`` and ``test_evaluator``, runs
every batch through the file in ONNX Runtime (CPU) with the session of the
config's task, and prints the metrics under the names tools/test.py prints:

* mmpretrain classifier (``OnnxClassifier``): ``accuracy/top1``;
* mmseg UperNet (``OnnxSegmentor``, the config's test mode: whole image or
  sliding window): ``mIoU``, ``aAcc``, ``mAcc``;
* mmdet Mask R-CNN, a whole-detector export (``OnnxDetector``):
  ``coco/bbox_mAP``, ``coco/segm_mAP``, ...

Preprocessing is the config's: its test pipeline and its data preprocessor
(normalise, pad); a file exported with ``--normalize`` gets raw pixels.
The file must be the config's task (its metadata says); the test dataset
must exist (the error names the path the config expects).
"""
import argparse
import json
import os.path as osp
import sys
import time

from mmvheat.utils import add_debug_arg, positive_int, require_file, run_tool


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Run an ONNX export on its config\'s test set and '
        'print the metrics tools/test.py prints.')
    parser.add_argument('config', help='the config the file was exported '
                        'from')
    parser.add_argument('file', help='the .onnx file (pytorch2onnx.py)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--out', help='also write the metrics to this JSON '
                        'file')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='ONNX Runtime intra-op threads')
    parser.add_argument('--max-batches', type=positive_int, default=None,
                        help='stop after this many batches (the metric is '
                        'then over those images only; for smoke tests)')
    add_debug_arg(parser)
    return parser.parse_args(argv)


def _paths_of(dataset: dict):
    """(what, path) pairs a dataset config reads: its annotation file and
    its data prefixes under ``data_root``."""
    root = dataset.get('data_root') or ''
    ann = dataset.get('ann_file') or ''
    prefix = dataset.get('data_prefix') or {}
    if isinstance(prefix, str):
        prefix = dict(img=prefix)
    if ann:
        yield 'ann_file', ann if osp.isabs(ann) else osp.join(root, ann)
    for key, value in prefix.items():
        if value:
            yield f'data_prefix.{key}', value if osp.isabs(value) \
                else osp.join(root, value)
    if root:
        yield 'data_root', root


def check_test_data(cfg) -> None:
    """A :class:`DeployError` naming the path when the config's test data
    (dataset paths, the evaluator's ``ann_file``) is not there."""
    from mmvheat.deployment import DeployError
    dataset = cfg.test_dataloader.dataset
    if 'dataset' in dataset and 'data_root' not in dataset:  # wrappers
        dataset = dataset.dataset
    needed = list(_paths_of(dataset))
    evaluators = cfg.get('test_evaluator') or []
    for evaluator in evaluators if isinstance(evaluators, list) \
            else [evaluators]:
        if evaluator.get('ann_file'):
            needed.append(('test_evaluator.ann_file', evaluator.ann_file))
    for what, path in needed:
        if not osp.exists(path):
            hint = ''
            if 'data/demo' in path.replace('\\', '/'):
                hint = ' (make the demo data: python tools/make_demo_data.py)'
            raise DeployError(
                f'test dataset not found: the config expects {path} '
                f'(test_dataloader.dataset {what}; data_root '
                f'{dataset.get("data_root")!r}) and it does not exist{hint}. '
                'Set --cfg-options test_dataloader.dataset.data_root=... '
                '(and the evaluator\'s ann_file) to where the data is.')


def session_for(task: str, path: str, cfg, threads=None):
    from mmvheat.deployment import OnnxClassifier, OnnxDetector, OnnxSegmentor
    kind = {'classifier': OnnxClassifier, 'segmentor': OnnxSegmentor,
            'detector': OnnxDetector}[task]
    return kind(path, cfg, threads=threads)


def evaluate(cfg, path: str, threads=None, max_batches=None) -> dict:
    """The config's test metrics of the ONNX file ``path``."""
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from mmvheat.deployment import (
        DeployError,
        check_file_fits_config,
        read_metadata,
    )
    if not osp.isfile(path):
        raise DeployError(f'ONNX file not found: {path}')
    from google.protobuf.message import DecodeError
    try:
        metadata = read_metadata(path)
    except DecodeError as err:  # not an ONNX file, or a truncated one
        raise DeployError(
            f'could not read {path} as an ONNX file ({err}); export one '
            'with tools/deployment/pytorch2onnx.py') from None
    task = check_file_fits_config(metadata, cfg, path)
    check_test_data(cfg)
    from onnxruntime.capi.onnxruntime_pybind11_state import (
        Fail,
        InvalidArgument,
        InvalidGraph,
        InvalidProtobuf,
    )
    try:
        session = session_for(task, path, cfg, threads)
    except (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf) as err:
        raise DeployError(f'ONNX Runtime cannot load {path}: {err}') from None
    init_default_scope(cfg.default_scope)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    count = 0
    start = time.perf_counter()
    for i, data in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        samples = session.predict_batch(data)
        evaluator.process(data_samples=samples, data_batch=data)
        count += len(samples)
    seconds = time.perf_counter() - start
    metrics = evaluator.evaluate(count)
    print(f'ran {count} images through {path} in {seconds:.1f} s '
          f'({task}, ONNX Runtime)')
    return metrics


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    cfg = Config.fromfile(require_file(args.config, 'config file'))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    metrics = evaluate(cfg, args.file, args.threads, args.max_batches)
    for key, value in metrics.items():
        print(f'{key}: {value}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({k: v if isinstance(v, (int, float, str)) else str(v)
                       for k, v in metrics.items()}, f, indent=2)


if __name__ == '__main__':
    from mmvheat.deployment import DeployError
    sys.exit(run_tool(main, 'test_onnx.py', errors=(DeployError, )))
