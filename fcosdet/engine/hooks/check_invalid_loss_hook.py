"""Stops training as soon as a loss term is NaN or infinite."""
import math
from collections.abc import Mapping

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import Hook
from mmengine.runner import Runner

from fcosdet.registry import HOOKS

from ..checkpoint_files import read_last_checkpoint


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
    :class:`~fcosdet.engine.hooks.CheckpointHook`): the message names the last confirmed one,
    which ``--resume`` picks. In distributed training every rank learns of a bad loss
    on any rank (one all-reduce of a flag), so all ranks stop together instead of hanging.

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
        last, _ = read_last_checkpoint(runner.work_dir)
        raise NonFiniteLossError(
            f'non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): '
            f'{terms}. Training stopped; last good checkpoint (what --resume picks): '
            f'{last or "none"}. Try a lower learning rate or a longer warm-up.')
