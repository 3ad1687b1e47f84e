"""fcosdet's Runner: mmengine's Runner with durable, safely loaded checkpoints and CPU-only DDP.

Only what a hook cannot do lives here (what it relies on in mmengine is pinned by
``tests/test_reliability/test_mmengine_contract.py``); the checkpoint policy (save order,
confirmation, plain-data encoding) is :class:`fcosdet.engine.hooks.CheckpointHook`'s.
"""
import os.path as osp
from collections.abc import Callable
from functools import partial

import torch
import torch.distributed as torch_dist
from mmengine.dist import master_only
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop, Runner
from torch import nn

from fcosdet.registry import RUNNERS
from fcosdet.utils.durable_files import write_durably

from .checkpoint_codec import decode_checkpoint
from .checkpoint_files import find_resume_checkpoint, nonfinite_stop_after
from .checkpoint_loading import DEFAULT_REVISE_KEYS, load_model_weights, read_checkpoint
from .dist import check_file_on_every_rank, decided_on_rank0, dist_backend, init_cpu_dist
from .resume_checks import check_resumed_optimizer, start_fresh_advice


def _pick_resume_checkpoint(work_dir: str, logger: MMLogger) -> str | None:
    """The checkpoint of ``work_dir`` that ``--resume`` continues from (logged), or None."""
    found, skipped = find_resume_checkpoint(work_dir)
    for why in skipped:
        logger.warning(f'--resume: skipped: {why}')
    if found is None:
        logger.warning(f'--resume: no checkpoint in {work_dir}; training starts from scratch')
    else:
        logger.info(f'Resuming from {found}')
    return found


@RUNNERS.register_module()
class DetRunner(Runner):
    """mmengine's :class:`~mmengine.runner.Runner` with four changes no hook can make.

    - ``save_checkpoint`` writes a hidden temporary file in the same folder, fsyncs it and
      renames it over the final name (mmengine's CheckpointHook calls it directly for best
      checkpoints too), so a crash while saving never leaves a half-written file.
    - ``load_checkpoint`` reads with ``weights_only=True`` and checks shapes
      (:mod:`fcosdet.engine.checkpoint_loading`), then decodes the plain-data message hub
      (:mod:`fcosdet.engine.checkpoint_codec`).
    - ``load_or_resume``: ``--resume`` without a file resolves ``last_checkpoint`` relative to
      the work dir and falls back to the newest checkpoint that loads.
    - Without CUDA, distributed runs use a gloo process group started by fcosdet (mmengine's own
      start-up needs CUDA) and plain CPU DistributedDataParallel (no ``device_ids``).
    """

    def setup_env(self, env_cfg: dict) -> None:
        """Start a gloo process group on CPU-only machines, then run mmengine's set-up.

        Args:
            env_cfg: The config's ``env_cfg`` (``dist_cfg.timeout`` is honoured).
        """
        if self.distributed and not torch_dist.is_initialized():
            dist_cfg = dict(env_cfg.get('dist_cfg', {}))
            backend = dist_backend(dist_cfg.get('backend'))
            if backend == 'gloo' and not torch.cuda.is_available():
                init_cpu_dist(self.launcher, int(dist_cfg.get('timeout', 1800)))
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: dict | None, model: nn.Module) -> nn.Module:
        """Wrap for distributed training; on CPU the DDP wrapper gets ``device_ids=None``.

        Args:
            model_wrapper_cfg: The config's ``model_wrapper_cfg`` (``None``: default DDP).
            model: The model to wrap.

        Returns:
            The (possibly wrapped) model.
        """
        if self.distributed and not torch.cuda.is_available():
            wrapper = dict(model_wrapper_cfg or dict(
                type='MMDistributedDataParallel', broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters', False)))
            wrapper.setdefault('device_ids', None)
            model_wrapper_cfg = wrapper
        return super().wrap_model(model_wrapper_cfg, model)

    def load_checkpoint(self, filename: str, map_location: str | Callable = 'cpu',
                        strict: bool = False,
                        revise_keys: list[tuple[str, str]] | None = None) -> dict:
        """Load a checkpoint with ``weights_only=True`` and shape checks, then decode it.

        mmengine's loader calls ``torch.load`` without ``weights_only`` (unsafe before torch
        2.6) and only warns about shape mismatches; this one reads with
        :func:`~fcosdet.engine.checkpoint_loading.read_checkpoint` and loads with
        :func:`~fcosdet.engine.checkpoint_loading.load_model_weights`. A partial load
        (mismatched or missing tensors skipped with a warning) is allowed in training (e.g.
        fine-tuning from ``load_from`` with another ``num_classes``) and an error in test/val,
        unless ``strict`` or the config key ``allow_partial_load`` says otherwise
        (``tools/test.py --allow-partial-load`` sets it). When resuming, the model must fit
        exactly and the config's optimizer is compared with the checkpoint's
        (:mod:`fcosdet.engine.resume_checks`: a one-line warning for a changed lr, an error
        for another optimizer type), since mmengine would restore the old values silently or
        fail at the first step.

        Args:
            filename: Checkpoint file or URI.
            map_location: Where to map the tensors.
            strict: Raise on any mismatch.
            revise_keys: ``(pattern, replacement)`` pairs applied to the state-dict keys
                (default: strip a DDP ``module.`` prefix).

        Returns:
            The loaded checkpoint dict (message hub decoded).
        """
        checkpoint = read_checkpoint(filename, map_location)
        decode_checkpoint(checkpoint)
        # mmengine's resume runs meta['config'] as a Python config (to compare gpu_ids): code
        # from the checkpoint; fcosdet writes the text under meta['cfg'], which nothing runs
        if isinstance(checkpoint.get('meta'), dict):
            checkpoint['meta'].pop('config', None)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        # default: partial only when fine-tuning from `load_from`; strict for resume, test, val
        training = isinstance(self._train_loop, BaseLoop)
        resuming = training and self._resume
        allow_partial = not strict and self.cfg.get('allow_partial_load',
                                                    training and not resuming)
        load_model_weights(model, checkpoint, filename, allow_partial,
                           tuple(revise_keys or DEFAULT_REVISE_KEYS),
                           advice=f'Resuming needs the model it was saved from; '
                           f'{start_fresh_advice(filename)}' if resuming else None)
        if resuming:
            warning = check_resumed_optimizer(
                getattr(self.optim_wrapper, 'optimizer', None), checkpoint, filename,
                nonfinite_stop_after(self.work_dir, filename))
            if warning:
                self.logger.warning(warning)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def load_or_resume(self) -> None:
        """``--resume`` without a file: the checkpoint :func:`find_resume_checkpoint` picks.

        mmengine takes ``last_checkpoint``'s content as is (an empty file, or a path of the
        work dir a copied one came from, then fails); the choice here falls back to the newest
        checkpoint that loads, warning about each one skipped. Distributed, rank 0 chooses (only
        its work dir holds checkpoints when the machines share no folder) and every rank must
        have the chosen file, or the file to load, at the same path: else all ranks stop with
        one error naming the ranks without it (a rank that started from scratch would run other
        iterations than the rest and hang them).
        """
        if self._resume and self._load_from is None and not self._has_loaded:
            self._load_from = decided_on_rank0(
                partial(_pick_resume_checkpoint, self.work_dir, self.logger))
            if self._load_from is None:
                return
        if self.distributed and self._load_from is not None and not self._has_loaded:
            check_file_on_every_rank(self._load_from, '--resume' if self._resume else 'load_from')
        super().load_or_resume()


    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: dict | None = None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True,
                        meta: dict | None = None, by_epoch: bool = True,
                        backend_args: dict | None = None) -> None:
        """Save like mmengine, but durably for local folders (temporary file, fsync, rename).

        Args:
            out_dir: Folder of the checkpoint.
            filename: File name of the checkpoint.
            file_client_args: Deprecated mmengine file client arguments.
            save_optimizer: Also save the optimizer state.
            save_param_scheduler: Also save the parameter scheduler states.
            meta: Extra meta information.
            by_epoch: Whether the training loop counts epochs.
            backend_args: mmengine file backend arguments.
        """
        kwargs = dict(file_client_args=file_client_args, save_optimizer=save_optimizer,
                      save_param_scheduler=save_param_scheduler, meta=meta, by_epoch=by_epoch,
                      backend_args=backend_args)
        if '://' in out_dir or backend_args or file_client_args:
            super().save_checkpoint(out_dir, filename, **kwargs)
            return
        write_durably(osp.join(out_dir, filename),
                      lambda tmp: super(DetRunner, self).save_checkpoint(
                          out_dir, osp.basename(tmp), **kwargs))
