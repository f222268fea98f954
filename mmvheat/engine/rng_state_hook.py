"""Save and restore random number generator states across resume.

mmengine checkpoints hold no RNG state, so a resumed run draws different
random numbers (drop path, augmentation) than an uninterrupted one. With this
hook, a killed-and-resumed run continues the same random stream.

The trick that makes the two runs meet: the state captured when a checkpoint
is written is also re-applied in the *uninterrupted* run at the next point
where training draws random numbers (the start of the next epoch, or the next
batch of an iteration-based loop), so whatever happens in between
(validation, mmengine's skipping of already-seen batches on resume) does not
matter.
"""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from mmvheat.registry import HOOKS


def capture_rng_state() -> dict:
    """The torch (CPU and CUDA), numpy and python RNG states."""
    state = dict(
        torch=torch.get_rng_state(),
        numpy=np.random.get_state(legacy=True),
        python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class _RestoringIterator:
    """Wraps an iteration-based loop's data iterator: passes the ``skip``
    batches mmengine replays on resume, then restores the pending RNG state
    before the next real batch is drawn."""

    def __init__(self, inner, hook: 'RNGStateHook', skip: int) -> None:
        self.inner = inner
        self.hook = hook
        self.skip = skip

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
        else:
            self.hook.apply_pending()
        return next(self.inner)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Keep RNG states in checkpoints and restore them on resume.

    Every process's states are saved and each process gets its own back.
    The states are captured on all ranks right before mmengine's
    ``CheckpointHook`` saves (this hook runs earlier in the same event and
    asks that hook whether it will save), because the checkpoint itself is
    written by rank 0 only. Add it with
    ``custom_hooks = [dict(type='mmvheat.RNGStateHook')]``.
    """
    priority = 'LOW'  # before CheckpointHook (VERY_LOW) in the same event

    def __init__(self) -> None:
        self._pending: Optional[dict] = None
        self._captured: Optional[tuple] = None  # (runner.iter, states)

    def apply_pending(self) -> None:
        if self._pending is not None:
            restore_rng_state(self._pending)
            self._pending = None

    @staticmethod
    def _checkpoint_due(runner, by_epoch: bool) -> bool:
        """Whether a CheckpointHook saves at this epoch / iteration end
        (its own test; True when it cannot be asked)."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook):
                continue
            try:
                if hook.by_epoch != by_epoch:
                    continue
                if by_epoch:
                    every = hook.every_n_epochs(runner, hook.interval,
                                                hook.save_begin)
                    last = hook.is_last_train_epoch(runner)
                else:
                    every = hook.every_n_train_iters(runner, hook.interval,
                                                     hook.save_begin)
                    last = hook.is_last_train_iter(runner)
                return every or (hook.save_last and last)
            except (AttributeError, TypeError):
                return True
        return False

    def _capture(self, runner) -> None:
        """On every rank: the states to save, gathered for rank 0."""
        state = capture_rng_state()
        states = all_gather_object(state) if get_world_size() > 1 else [state]
        self._captured = (runner.iter, states)
        self._pending = state

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self._checkpoint_due(runner, by_epoch=False):
            self._capture(runner)

    def after_train_epoch(self, runner) -> None:
        if self._checkpoint_due(runner, by_epoch=True):
            self._capture(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._captured is not None and self._captured[0] == runner.iter:
            states = self._captured[1]
        else:  # a save no CheckpointHook announced: this rank's state only
            state = capture_rng_state()
            states = [state]
            self._pending = state
        checkpoint['rng_state'] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('rng_state')
        if not states:
            print_log('RNGStateHook: the checkpoint holds no RNG state; the '
                      'resumed run draws new random numbers',
                      logger='current')
            return
        rank = get_rank()
        if len(states) != get_world_size():
            print_log(f'RNGStateHook: checkpoint has {len(states)} RNG '
                      f'states for {get_world_size()} processes; using '
                      'rank 0\'s', logger='current')
            rank = 0
        self._pending = states[rank]

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # iteration-based loop
            loop.dataloader_iterator = _RestoringIterator(
                loop.dataloader_iterator, self, skip=loop.iter)

    def before_train_epoch(self, runner) -> None:
        if not hasattr(runner.train_loop, 'dataloader_iterator'):
            self.apply_pending()
