"""fcosdet's Runner: mmengine's Runner with crash-safe checkpoints and CPU-only distribution."""
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.dist import master_only
from mmengine.runner import Runner
from torch import nn

from fcosdet.registry import RUNNERS
from fcosdet.utils.checkpoint_globals import register_checkpoint_safe_globals

from .dist import dist_backend, init_cpu_dist


def _is_local(path: str) -> bool:
    """Whether ``path`` is a plain local path (no ``scheme://`` prefix)."""
    return '://' not in path


@RUNNERS.register_module()
class DetRunner(Runner):
    """mmengine's :class:`~mmengine.runner.Runner` with three changes.

    - Checkpoints are written to a hidden temporary file in the same folder, flushed to disk and
      renamed over the final name, so a crash while saving never leaves a half-written file.
    - Loading (``load_from`` / ``resume``) allow-lists the few non-tensor types a training
      checkpoint holds (:mod:`fcosdet.utils.checkpoint_globals`); torch keeps
      ``weights_only=True``.
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

    def load_or_resume(self) -> None:
        """Load ``load_from`` or resume, with the checkpoint allow-list registered first."""
        register_checkpoint_safe_globals()
        super().load_or_resume()

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
