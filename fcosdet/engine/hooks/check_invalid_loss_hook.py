"""Stops training as soon as a loss term is NaN or infinite."""
import math
import os.path as osp
from collections.abc import Mapping

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import Hook
from mmengine.runner import Runner

from fcosdet.registry import HOOKS

from ..checkpoint_files import find_resume_checkpoint, record_nonfinite_stop


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite during training."""


def non_finite_terms(outputs: Mapping[str, object] | None) -> dict[str, float]:
    """The loss terms (keys starting with ``loss``) whose value is not finite.

    Args:
        outputs: The log variables returned by ``train_step`` (scalar tensors or numbers).

    Returns:
        ``{name: value}`` of every NaN/Inf term, in the order of ``outputs``.
    """
    bad = {}
    for name, value in (outputs or {}).items():
        if name.startswith('loss'):
            number = float(value.detach().float().mean() if torch.is_tensor(value) else value)
            if not math.isfinite(number):
                bad[name] = number
    return bad


@HOOKS.register_module()
class CheckInvalidLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when a loss term is NaN/Inf.

    Runs before the checkpoint hook, so the step that produced the bad loss is never saved, and
    the checkpoint it started from is never confirmed (see
    :class:`~fcosdet.engine.hooks.CheckpointHook`): it goes on the work dir's unconfirmed list,
    which ``--resume`` skips, and the message names what ``--resume`` picks (the last
    confirmed checkpoint, or none) and how to continue with another learning rate. In
    distributed training every rank learns of a bad loss on any rank (one all-reduce of a
    flag), so all ranks stop together instead of hanging.

    Args:
        interval: Check every ``interval`` training iterations.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'CheckInvalidLossHook: interval must be an int >= 1, got '
                             f'{interval!r}')
        self.interval = interval

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: object = None,
                         outputs: Mapping[str, object] | None = None) -> None:
        """Check the loss terms of the iteration that just ended."""
        if not self.every_n_train_iters(runner, self.interval):
            return
        bad = non_finite_terms(outputs)
        num_bad = torch.tensor(float(len(bad)))
        if is_distributed():
            all_reduce(num_bad, op='sum')
        if num_bad.item() == 0:
            return
        terms = ', '.join(f'{k}={v}' for k, v in bad.items()) or 'on another rank'
        where = f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'
        rejected = _reject_pending(runner, f'saved just before the non-finite loss at {where}')
        raise NonFiniteLossError(f'non-finite loss at {where}: {terms}. Training stopped; '
                                 f'{stop_advice(runner, where, rejected)}')


def _reject_pending(runner: Runner, why: str) -> str | None:
    """Let the checkpoint hook put its unconfirmed checkpoint on the unconfirmed list."""
    for hook in runner.hooks:
        reject = getattr(hook, 'reject_pending', None)
        if callable(reject):
            return reject(runner, why)
    return None


def stop_advice(runner: Runner, where: str, rejected: str | None = None) -> str:
    """What ``--resume`` picks now (the same choice as the runner's) and how to go on; the
    choice and ``where`` are recorded (rank 0) so that resuming it can warn.

    Args:
        runner: The runner that stops.
        where: Where the non-finite value appeared (``iteration 5 (epoch 1)``).
        rejected: The checkpoint just put on the unconfirmed list, if any.

    Returns:
        The end of a stop message, from ``last good checkpoint (what --resume picks): ...``.
    """
    resume, _ = find_resume_checkpoint(runner.work_dir)
    skipped = (f' ({osp.basename(rejected)}, saved just before, is not confirmed and --resume '
               'skips it)' if rejected else '')
    if resume is None:
        return (f'last good checkpoint (what --resume picks): none{skipped}, so --resume starts '
                'from scratch. Try a lower learning rate or a longer warm-up.')
    if runner.rank == 0:
        record_nonfinite_stop(runner.work_dir, resume, where)
    return (f'last good checkpoint (what --resume picks): {resume}{skipped}. Try a lower '
            'learning rate or a longer warm-up: --resume keeps the learning rate stored in '
            f'the checkpoint, so start from its weights instead (--cfg-options '
            f'load_from={resume}, without --resume).')
