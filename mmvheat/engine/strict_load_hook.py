"""Strict loading of ``load_from``, ``--resume`` and test checkpoints.

mmengine's ``Runner.load_checkpoint`` loads with ``strict=False`` and only
logs what does not fit. Before it copies anything it calls the hooks'
``after_load_checkpoint`` with the loaded checkpoint; this hook applies the
strict-loading rule of :func:`mmvheat.checkpoint.check_checkpoint_fits`
there, so a wrong-architecture file is an error naming the keys (and the
process exits non-zero), while a head with another class count still
fine-tunes. Our configs list it in ``custom_hooks``, so it also runs in
mmdet's, mmseg's and mmpretrain's own ``tools/test.py``/``train.py``; our
tools add it to any config that lacks it.
"""
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import BaseLoop

from mmvheat.checkpoint import check_checkpoint_fits
from mmvheat.registry import HOOKS


def load_purpose(runner) -> str:
    """'resume', 'finetune' (``load_from`` while training) or 'test'
    (evaluating: ``runner.test()``/``val()``)."""
    training = isinstance(getattr(runner, '_train_loop', None), BaseLoop)
    if training and getattr(runner, '_resume', False):
        return 'resume'
    return 'finetune' if training else 'test'


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Refuse a checkpoint that does not fit the model (see
    :func:`mmvheat.checkpoint.check_checkpoint_fits`).

    Runs before the other hooks' ``after_load_checkpoint`` (``VERY_HIGH``),
    so the EMA hook never loads a file that is refused, and loads the
    trimmed state dict when fine-tuning.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if isinstance(model, BaseTTAModel):  # --tta: the wrapped model
            model = model.module
        source = getattr(runner, '_load_from', None) or 'the checkpoint'
        check_checkpoint_fits(model, checkpoint, load_purpose(runner),
                              source=str(source))
