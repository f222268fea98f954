"""Shared set-up of tools/train.py and tools/test.py.

One entry point for mmpretrain, mmdet and mmseg: the config's
``default_scope`` decides which library's registries the runner uses.
"""
import os
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config, DictAction  # noqa: F401 (re-export)
from mmengine.runner import Runner


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
    import mmvheat.models  # noqa: F401
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def build_runner(cfg: Config) -> Runner:
    """Build the runner the config asks for (``runner_type``) or mmengine's
    default one."""
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def set_local_rank(local_rank: Optional[int]) -> None:
    """Export ``LOCAL_RANK`` for launchers that pass ``--local_rank``."""
    if 'LOCAL_RANK' not in os.environ and local_rank is not None:
        os.environ['LOCAL_RANK'] = str(local_rank)


def launcher_choices() -> Sequence[str]:
    return ('none', 'pytorch', 'slurm', 'mpi')
