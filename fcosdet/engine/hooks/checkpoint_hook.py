"""mmengine's CheckpointHook made crash-safe: nothing good is removed before a new save is durable.

mmengine's hook removes the oldest kept checkpoint (and the previous best one) *before* it writes
the new one, and writes ``last_checkpoint`` in place; a kill during the save then leaves no
checkpoint with ``max_keep_ckpts=1`` and an empty or dangling ``last_checkpoint``. This hook:

- refuses to write a checkpoint whose model or optimizer state holds NaN/Inf
  (:class:`NonFiniteCheckpointError`); :class:`fcosdet.engine.DetRunner` writes each one
  durably (temporary file, fsync, rename: :mod:`fcosdet.engine.checkpoint_files`);
- counts a checkpoint as good only once it is *confirmed*: the next training iteration, which
  starts from its weights, ends with a finite loss (or training ends right after it). Only then
  does ``last_checkpoint`` name it (relative to the work dir, written atomically) and are the
  checkpoints beyond ``max_keep_ckpts`` removed, so the previous good one survives a poisoned
  save (weights already huge but finite, the next step gives NaN);
- removes a previous best checkpoint only after the new best one is durable;
- removes the ``.tmp`` files of killed saves when training starts.

Registered as ``CheckpointHook`` in fcosdet's scope, so ``dict(type='CheckpointHook')`` in a
config (MMDetection's spelling) gets this hook. Remote ``out_dir`` folders (a ``backend_args``
or ``scheme://`` path) keep mmengine's behaviour.
"""
import os.path as osp
from collections import deque

import torch
from mmengine.hooks import CheckpointHook as MMEngineCheckpointHook
from mmengine.runner import Runner

from fcosdet.registry import HOOKS

from ..checkpoint_codec import encode_checkpoint
from ..checkpoint_files import (
    mark_unconfirmed,
    remove_stale_tmp_files,
    write_last_checkpoint,
)
from .check_invalid_loss_hook import NonFiniteLossError, non_finite_terms, stop_advice


class NonFiniteCheckpointError(NonFiniteLossError):
    """The model or optimizer state holds NaN/Inf, so the checkpoint is not written."""


def non_finite_state(runner: Runner) -> list[str]:
    """Names of the model's and optimizer's floating tensors holding NaN or Inf."""
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    named = [(f'model {k}', v) for k, v in model.state_dict().items()]
    optimizer = getattr(getattr(runner, 'optim_wrapper', None), 'optimizer', None)
    if isinstance(optimizer, torch.optim.Optimizer):
        for index, state in optimizer.state_dict()['state'].items():
            named += [(f'optimizer state {index}.{k}', v) for k, v in state.items()]
    named = [(k, v) for k, v in named if torch.is_tensor(v) and v.is_floating_point()]
    if not named:
        return []
    finite = torch.stack([v.detach().isfinite().all() for _, v in named]).tolist()
    return [k for (k, _), ok in zip(named, finite) if not ok]


@HOOKS.register_module(name='CheckpointHook')
class CheckpointHook(MMEngineCheckpointHook):
    """Crash-safe :class:`mmengine.hooks.CheckpointHook` (see the module docstring).

    Takes mmengine's arguments. ``max_keep_ckpts`` counts confirmed checkpoints; one
    unconfirmed checkpoint may exist besides them between a save and the next iteration.
    """

    # set by before_train; outside training (e.g. runner.val() alone) mmengine's behaviour
    _local = False
    _pending: str | None = None

    def before_train(self, runner: Runner) -> None:
        """Set up like mmengine (its pruning deferred to confirmation) and clean stale files."""
        kept = list(runner.message_hub.get_info('keep_ckpt_ids', []))
        runner.message_hub.update_info('keep_ckpt_ids', [])  # mmengine would prune here
        super().before_train(runner)
        self.keep_ckpt_ids = deque(kept)  # no maxlen: pruning happens in _confirm
        runner.message_hub.update_info('keep_ckpt_ids', kept)
        self._local = (not self.backend_args and not self.file_client_args
                       and '://' not in str(self.out_dir))
        self._pending = None
        if not self._local:
            return
        self._rebase_best_path()
        if runner.rank == 0:
            for folder in {runner.work_dir, self.out_dir}:
                for name in remove_stale_tmp_files(folder):
                    runner.logger.warning(f'removed {osp.join(folder, name)}, left by a save '
                                          'that was killed')
        if runner.iter > 0:  # resumed: its checkpoint is confirmed again by the next iteration
            step = runner.epoch if self.by_epoch else runner.iter
            path = osp.join(self.out_dir, self.filename_tmpl.format(step))
            self._pending = path if osp.isfile(path) else None

    def _rebase_best_path(self) -> None:
        """Point a resumed best-checkpoint path into this out dir (a copied work dir)."""
        if getattr(self, 'best_ckpt_path', None):
            self.best_ckpt_path = osp.join(self.out_dir, osp.basename(self.best_ckpt_path))
        for key, path in getattr(self, 'best_ckpt_path_dict', {}).items():
            if path:
                self.best_ckpt_path_dict[key] = osp.join(self.out_dir, osp.basename(path))

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Write the message hub and meta as plain data (``weights_only`` loading)."""
        encode_checkpoint(checkpoint)

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: object = None,
                         outputs: dict | None = None) -> None:
        """Confirm the pending checkpoint if this iteration's loss is finite, then save."""
        if self._pending and not non_finite_terms(outputs):
            self._confirm(runner)
        super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def after_train(self, runner: Runner) -> None:
        """Training ended normally: its last checkpoint is confirmed."""
        if self._pending:
            self._confirm(runner)
        super().after_train(runner)

    def reject_pending(self, runner: Runner, why: str) -> str | None:
        """A non-finite loss: the pending checkpoint is never confirmed and ``--resume`` skips it.

        Called by :class:`~fcosdet.engine.hooks.CheckInvalidLossHook` before it stops training.

        Args:
            runner: The runner.
            why: Why it is rejected (recorded in the work dir's unconfirmed list).

        Returns:
            The rejected checkpoint, or None when none was pending.
        """
        path, self._pending = self._pending, None
        if path is None or not self._local:
            return None
        if runner.rank == 0 and osp.isfile(path):
            mark_unconfirmed(runner.work_dir, path, why)
        return path

    def _confirm(self, runner: Runner) -> None:
        """Name the pending checkpoint in ``last_checkpoint``, then prune the old ones."""
        path, self._pending = self._pending, None
        if runner.rank != 0:
            return
        write_last_checkpoint(runner.work_dir, path)
        while self.max_keep_ckpts > 0 and len(self.keep_ckpt_ids) > self.max_keep_ckpts:
            old = osp.join(self.out_dir, self.filename_tmpl.format(self.keep_ckpt_ids.popleft()))
            if osp.isfile(old) and osp.abspath(old) != osp.abspath(path):
                self.file_backend.remove(old)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

    def _save_checkpoint_with_step(self, runner: Runner, step: int, meta: dict) -> None:
        """Save durably; the checkpoint stays pending until confirmed."""
        if not self._local:
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        self._check_finite(runner, step)
        if self.max_keep_ckpts > 0 and step not in self.keep_ckpt_ids:
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        # DetRunner writes it durably (temporary file, fsync, rename)
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args,
                               save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta,
                               by_epoch=self.by_epoch, backend_args=self.backend_args,
                               **self.args)
        self._pending = self.last_ckpt

    def _check_finite(self, runner: Runner, step: int) -> None:
        """Raise :class:`NonFiniteCheckpointError` if the state to save holds NaN/Inf."""
        bad = non_finite_state(runner)
        if bad:
            more = f' and {len(bad) - 3} more' if len(bad) > 3 else ''
            where = f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'
            raise NonFiniteCheckpointError(
                f'non-finite values in {", ".join(bad[:3])}{more} at epoch {runner.epoch + 1}, '
                f'iteration {runner.iter + 1}: {self.filename_tmpl.format(step)} was not written. '
                f'Training stopped; {stop_advice(runner, where)}')

    def _save_best_checkpoint(self, runner: Runner, metrics: dict) -> None:
        """Save a new best checkpoint like mmengine, removing the old one only afterwards."""
        if not self._local or not self.save_best:
            super()._save_best_checkpoint(runner, metrics)
            return
        single = len(self.key_indicators) == 1
        old = [self.best_ckpt_path] if single else list(self.best_ckpt_path_dict.values())
        # hide the old paths from mmengine, which would remove them before saving
        if single:
            self.best_ckpt_path = None
        else:
            self.best_ckpt_path_dict = dict.fromkeys(self.best_ckpt_path_dict)
        super()._save_best_checkpoint(runner, metrics)
        new = [self.best_ckpt_path] if single else list(self.best_ckpt_path_dict.values())
        for index, (before, after) in enumerate(zip(old, new)):
            if after is None:  # not improved: keep the old best
                if single:
                    self.best_ckpt_path = before
                else:
                    self.best_ckpt_path_dict[self.key_indicators[index]] = before
            elif before and before != after and osp.isfile(before) and runner.rank == 0:
                self.file_backend.remove(before)
                runner.logger.info(f'The previous best checkpoint {before} is removed')
