"""Fault probes imported (``custom_imports``) by the training subprocesses of the fault tests.

``PoisonWeightsHook(at_iter, flag_file)``: right after training iteration ``at_iter``
(1-based) multiplies every conv weight by 1e20, so the checkpoint saved at that iteration holds
huge but finite weights and the next forward pass overflows to NaN/Inf: the "loss explodes on
the iteration before a save" case. It fires once per ``flag_file`` (a resumed run is clean).
"""
import os

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from fcosdet.registry import HOOKS


@HOOKS.register_module()
class PoisonWeightsHook(Hook):
    priority = 'HIGH'  # before CheckpointHook (VERY_LOW) saves this iteration

    def __init__(self, at_iter: int, flag_file: str) -> None:
        self.at_iter = at_iter
        self.flag_file = flag_file

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 != self.at_iter or os.path.exists(self.flag_file):
            return
        open(self.flag_file, 'w').close()
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.weight.mul_(1e20)
