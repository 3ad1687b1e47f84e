"""fcosdet's Runner: mmengine's Runner with crash-safe checkpoints and CPU-only distribution."""
import os
import os.path as osp
from collections.abc import Callable

import torch
import torch.distributed as torch_dist
from mmengine.dist import master_only
from mmengine.runner import Runner
from torch import nn

from fcosdet.registry import RUNNERS

from .checkpoint_codec import decode_checkpoint, encode_checkpoint
from .dist import dist_backend, init_cpu_dist


def _is_local(path: str) -> bool:
    """Whether ``path`` is a plain local path (no ``scheme://`` prefix)."""
    return '://' not in path


@RUNNERS.register_module()
class DetRunner(Runner):
    """mmengine's :class:`~mmengine.runner.Runner` with three changes.

    - Checkpoints are written to a hidden temporary file in the same folder, flushed to disk and
      renamed over the final name, so a crash while saving never leaves a half-written file.
    - The message hub and meta of a checkpoint are written as plain data
      (:mod:`fcosdet.engine.checkpoint_codec`), so ``resume`` works with torch's
      ``weights_only=True`` loading and no allow-listed classes.
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

    def call_hook(self, fn_name: str, **kwargs) -> None:
        """Call the hooks; a checkpoint about to be saved is then encoded as plain data."""
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'before_save_checkpoint':
            encode_checkpoint(kwargs['checkpoint'])

    def load_checkpoint(self, filename: str, map_location: str | Callable = 'cpu',
                        strict: bool = False,
                        revise_keys: list[tuple[str, str]] | None = None) -> dict:
        """Load like mmengine, then rebuild the message hub's HistoryBuffers.

        Args:
            filename: Checkpoint file or URL.
            map_location: Where to map the tensors.
            strict: Whether the model's keys must match exactly.
            revise_keys: ``(pattern, replacement)`` pairs applied to the state-dict keys
                (default: strip a DDP ``module.`` prefix).

        Returns:
            The loaded checkpoint dict.
        """
        revise_keys = revise_keys if revise_keys is not None else [(r'^module.', '')]
        checkpoint = super().load_checkpoint(filename, map_location, strict, revise_keys)
        decode_checkpoint(checkpoint)
        return checkpoint

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: dict | None = None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True,
                        meta: dict | None = None, by_epoch: bool = True,
                        backend_args: dict | None = None) -> None:
        """Save like mmengine, but atomically for local folders (temporary file, then rename).

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
        if not _is_local(out_dir) or backend_args or file_client_args:
            super().save_checkpoint(out_dir, filename, **kwargs)
            return
        tmp_name = f'.{filename}.{os.getpid()}.tmp'
        tmp_path = osp.join(out_dir, tmp_name)
        try:
            super().save_checkpoint(out_dir, tmp_name, **kwargs)
            with open(tmp_path, 'rb+') as f:
                os.fsync(f.fileno())
            os.replace(tmp_path, osp.join(out_dir, filename))
        finally:
            if osp.exists(tmp_path):
                os.remove(tmp_path)
