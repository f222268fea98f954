"""Shared set-up of tools/train.py and tools/test.py.

One entry point for mmpretrain, mmdet and mmseg: the config's
``default_scope`` decides which library's registries the runner uses.

Failures a user can fix (a missing config, data root, annotation file or
checkpoint, an offline download, a checkpoint that does not fit) end the
tools with one ``<tool>: error: ...`` line on stderr and exit status 1
(:func:`run_tool`); ``--debug`` or ``MMVHEAT_DEBUG=1`` shows the traceback
instead.
"""
import argparse
import logging
import os
import os.path as osp
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from .cli import DEBUG_ENV, add_debug_arg


class ToolError(RuntimeError):
    """A wrong option or config setting that the user can fix."""


def load_config(path: str, cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Read a config, apply ``--cfg-options``, the launcher and work dir.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): Overrides from ``--cfg-options``.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'.
            Defaults to 'none'.
        work_dir (str, optional): ``--work-dir``; defaults to
            ``./work_dirs/<config name>`` when the config sets none.

    Returns:
        Config: The config, ready for :func:`build_runner`.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    # Registers VHeat and installs the torch>=2.6 checkpoint-loading fix,
    # also for configs that do not list mmvheat in custom_imports.
    import mmvheat.engine  # noqa: F401
    import mmvheat.models  # noqa: F401
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    ensure_strict_loading(cfg)
    if cfg.get('compile') is not None:
        cfg.compile = compile_settings(cfg.compile)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def _syncbn_to_bn(node) -> int:
    """Replace ``SyncBN`` norm configs by ``BN`` in place; count them."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _syncbn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _syncbn_to_bn(value)
    return count


def setup_cpu_distributed(cfg: Config) -> None:
    """Make a distributed launch work on a machine without CUDA.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its DDP
    wrapper passes ``device_ids``; both fail without a GPU. With the pytorch
    launcher (torchrun) and no CUDA this creates a gloo process group first
    (the runner then skips ``init_dist``), wraps the model with
    ``device_ids=None`` and swaps SyncBN (unsupported by gloo) for BN.
    Does nothing with CUDA or without a launcher.
    """
    import torch
    import torch.distributed as dist
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise ToolError(
            f'--launcher {cfg.launcher} needs CUDA; on a CPU-only machine '
            'use --launcher pytorch (torchrun, tools/dist_train.sh)')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    swapped = _syncbn_to_bn(cfg.model)
    if swapped:
        print_log(f'CPU distributed run (gloo): {swapped} SyncBN layer '
                  'config(s) replaced by BN', logger='current',
                  level=logging.WARNING)


def _dataset_cfgs(node):
    """Dataset configs inside a (possibly wrapped) dataset config."""
    if isinstance(node, dict):
        if 'data_root' in node or 'ann_file' in node:
            yield node
        for key in ('dataset', 'datasets'):
            yield from _dataset_cfgs(node.get(key))
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from _dataset_cfgs(item)


def check_data_paths(cfg: Config, loaders: Sequence[str]) -> None:
    """Fail early, naming the path, when a dataset's files are missing.

    Checks ``data_root``, ``ann_file`` and directory ``data_prefix`` entries
    of the named dataloaders (those present in the config).

    Raises:
        FileNotFoundError: A path that does not exist, and which loader and
            config key it came from.
    """
    hint = ('set `data_root` at the top of the config (for the demo: '
            'python tools/make_demo_data.py)')
    for loader in loaders:
        if cfg.get(loader) is None:
            continue
        for ds in _dataset_cfgs(cfg[loader].get('dataset')):
            root = ds.get('data_root') or ''
            if root and not osp.isdir(root):
                raise FileNotFoundError(
                    f'{loader}: data_root {root!r} does not exist; {hint}')
            ann = ds.get('ann_file')
            if ann:
                path = ann if osp.isabs(ann) else osp.join(root, ann)
                if not osp.isfile(path):
                    raise FileNotFoundError(
                        f'{loader}: annotation file {path!r} does not exist '
                        f'(data_root {root!r}, ann_file {ann!r}); {hint}')
            prefix = ds.get('data_prefix')
            prefixes = prefix.values() if isinstance(prefix, dict) else [
                prefix
            ]
            for sub in prefixes:
                if isinstance(sub, str) and sub:
                    path = sub if osp.isabs(sub) else osp.join(root, sub)
                    if not osp.isdir(path):
                        raise FileNotFoundError(
                            f'{loader}: data folder {path!r} does not exist'
                            f' (data_root {root!r}); {hint}')


def clear_pretrained(node, where: str = 'model') -> list:
    """Set ``checkpoint=None`` in every ``Pretrained`` init_cfg, in place.

    What ``tools/train.py --no-pretrained`` does to ``cfg.model``: the
    backbone (and any other module) starts from its random initialisation
    instead of downloading or reading the config's pretrained weights.

    Returns:
        list[str]: ``'<key path>: <old checkpoint>'`` per cleared entry.
    """
    cleared = []
    if isinstance(node, dict):
        init = node.get('init_cfg')
        for i, item in enumerate(init if isinstance(init, list) else [init]):
            if (isinstance(item, dict) and item.get('type') == 'Pretrained'
                    and item.get('checkpoint') is not None):
                key = f'{where}.init_cfg' + (
                    f'[{i}]' if isinstance(init, list) else '')
                cleared.append(f"{key}: {item['checkpoint']}")
                item['checkpoint'] = None
        for key, value in node.items():
            if key != 'init_cfg':
                cleared += clear_pretrained(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            cleared += clear_pretrained(value, f'{where}[{i}]')
    return cleared


# Inductor options for training under torch.compile with changing input
# sizes. PyTorch 2.14's inductor cannot order the symbolic strides of a
# channels-last view that the forward saves for backward (the (B, C, H, W)
# view a convolution gets of a (B, H, W, C) map) and fails with "cannot
# determine truth value of Relational"; keeping such outputs at their exact
# eager strides avoids that path (pytorch/pytorch#185510).
COMPILE_OPTIONS = dict(strict_output_strides=True)


def compile_settings(value) -> Optional[dict]:
    """The ``torch.compile`` keyword arguments for a config's ``compile``
    key (mmengine's: True, False/None or a dict of keyword arguments), with
    :data:`COMPILE_OPTIONS` added to the inductor options the config does
    not set itself. None when the config does not compile."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise ToolError('compile must be True, False or a dict of '
                        f'torch.compile arguments, got {value!r}')
    settings = dict(value)
    if settings.get('backend', 'inductor') == 'inductor':
        settings['options'] = {**COMPILE_OPTIONS,
                               **(settings.get('options') or {})}
    return settings


def teardown_distributed() -> None:
    """Destroy the process group, if any, so that processes exit cleanly
    (a live gloo group at interpreter exit can abort the process)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def build_runner(cfg: Config) -> Runner:
    """Build the runner the config asks for (``runner_type``) or mmengine's
    default one (after :func:`setup_cpu_distributed`)."""
    setup_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The flags train.py and test.py share: ``--work-dir``,
    ``--cfg-options``, ``--launcher`` and ``--local_rank``."""
    parser.add_argument(
        '--work-dir',
        help="mmengine's work dir: logs, checkpoints and results (default: "
        "the config's work_dir, else ./work_dirs/<config name>)")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=1')
    parser.add_argument(
        '--launcher',
        choices=('none', 'pytorch', 'slurm', 'mpi'),
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help='set by torch.distributed.launch; exported as '
                        'LOCAL_RANK')
    add_debug_arg(parser)


def set_local_rank(local_rank: Optional[int]) -> None:
    """Export ``LOCAL_RANK`` for launchers that pass ``--local_rank``."""
    if 'LOCAL_RANK' not in os.environ and local_rank is not None:
        os.environ['LOCAL_RANK'] = str(local_rank)


def expected_errors() -> Tuple[type, ...]:
    """The exception types :func:`run_tool` reports as one line: a missing
    file, an unreadable or unfitting checkpoint, a failed download, a
    :class:`ToolError`."""
    from mmvheat.checkpoint import CheckpointError
    from mmvheat.download import DownloadError
    return (FileNotFoundError, NotADirectoryError, CheckpointError,
            DownloadError, ToolError)


def run_tool(main: Callable[[Optional[List[str]]], object], prog: str,
             argv: Optional[List[str]] = None,
             errors: Tuple[type, ...] = ()) -> int:
    """Run a tool's ``main``; report expected failures as one line.

    An exception of :func:`expected_errors` prints ``{prog}: error:
    {message}`` and a hint on ``--debug`` to stderr and returns 1; with
    ``--debug`` in the arguments or ``MMVHEAT_DEBUG=1`` it propagates with
    its traceback. Anything else propagates (a bug deserves a traceback).

    Args:
        main (Callable): The tool's ``main(argv)``.
        prog (str): The tool's name for the message, e.g. 'test.py'.
        argv (list[str], optional): Arguments. Defaults to None
            (``sys.argv[1:]``).
        errors (tuple[type], optional): More exception types the tool
            reports as one line (the deployment tools pass
            ``mmvheat.deployment.DeployError``). Defaults to ().

    Returns:
        int: The exit status: 0, or 1 after an expected failure.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    debug = '--debug' in args or os.environ.get(DEBUG_ENV, '') not in ('',
                                                                       '0')
    try:
        main(argv)
    except expected_errors() + tuple(errors) as err:
        if debug:
            raise
        sys.stderr.write(f'{prog}: error: {err}\n'
                         f'(run with --debug or {DEBUG_ENV}=1 for the '
                         'traceback)\n')
        return 1
    return 0


def ensure_strict_loading(cfg: Config) -> bool:
    """Add :class:`mmvheat.engine.StrictLoadHook` to ``custom_hooks``
    unless the config lists it; returns whether it was added."""
    hooks = list(cfg.get('custom_hooks') or [])
    if any(str(h.get('type', '')).split('.')[-1] == 'StrictLoadHook'
           for h in hooks if isinstance(h, dict)):
        return False
    hooks.append(dict(type='mmvheat.StrictLoadHook'))
    cfg.custom_hooks = hooks
    return True


def _pretrained_checkpoints(node) -> List[str]:
    """Every ``Pretrained`` init_cfg checkpoint inside a model config."""
    found = []
    if isinstance(node, dict):
        init = node.get('init_cfg')
        for item in init if isinstance(init, list) else [init]:
            if isinstance(item, dict) and item.get('type') == 'Pretrained' \
                    and item.get('checkpoint') is not None:
                found.append(str(item['checkpoint']))
        for key, value in node.items():
            if key != 'init_cfg':
                found += _pretrained_checkpoints(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found += _pretrained_checkpoints(value)
    return found


def fetch_checkpoint(path: str, what: str, hint: str = '') -> str:
    """Check a checkpoint before the runner is built: a local file must
    exist; a URL is downloaded into the cache now (or found there), so an
    offline or failed download stops the tool in seconds.

    Args:
        path (str): A local path or an http(s) URL.
        what (str): What it is, for the message (e.g. 'load_from').
        hint (str): Appended to the message on failure. Defaults to ''.

    Returns:
        str: The local file.
    """
    from mmvheat.download import DownloadError, download_checkpoint, is_url
    if is_url(path):
        try:
            return download_checkpoint(path)
        except DownloadError as err:
            raise DownloadError(f'{what}: {err}{hint}') from None
    if not osp.isfile(osp.expanduser(path)):
        raise FileNotFoundError(
            f'{what}: checkpoint not found: {path}{hint}')
    return path


def check_pretrained(cfg: Config) -> None:
    """:func:`fetch_checkpoint` for every ``Pretrained`` init_cfg of
    ``cfg.model``; a failure says that ``--no-pretrained`` trains from
    scratch."""
    hint = ('\nOr pass --no-pretrained to train from scratch (random '
            'initialisation).')
    for path in _pretrained_checkpoints(cfg.get('model')):
        fetch_checkpoint(path, 'pretrained weights (init_cfg)', hint)
