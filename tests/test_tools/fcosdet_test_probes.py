"""Probes imported (via ``custom_imports``) by the training subprocesses of the CLI tests.

- With ``PROBE_DIR`` set, every call of the FCOS head's cross-rank ``reduce_mean`` is logged to
  ``PROBE_DIR/rank<r>.jsonl`` as ``[local value, returned value]``.
- ``NaNInjectionHook(at_iter)`` fills the regression conv with NaN before iteration
  ``at_iter`` (0-based), so that iteration's loss is not finite.
"""
import json
import os

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from fcosdet.models.dense_heads import fcos_head
from fcosdet.registry import HOOKS

_reduce_mean = fcos_head.reduce_mean


def _logged_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    local = float(value)  # read before a possibly in-place all-reduce
    out = _reduce_mean(value)
    rank = dist.get_rank() if dist.is_initialized() else 0
    with open(os.path.join(os.environ['PROBE_DIR'], f'rank{rank}.jsonl'), 'a') as f:
        f.write(json.dumps([local, float(out)]) + '\n')
    return out


if os.environ.get('PROBE_DIR'):
    fcos_head.reduce_mean = _logged_reduce_mean


@HOOKS.register_module()
class NaNInjectionHook(Hook):
    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter == self.at_iter:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            with torch.no_grad():
                model.bbox_head.conv_reg.weight.fill_(float('nan'))
