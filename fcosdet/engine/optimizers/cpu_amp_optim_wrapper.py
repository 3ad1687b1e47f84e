"""Mixed precision on CPU: bfloat16 autocast around the forward pass, always or where measured
faster (``dtype='auto'``)."""
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from mmengine.dist import broadcast_object_list
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from torch import nn

from fcosdet.registry import OPTIM_WRAPPERS

DTYPES = ('bfloat16', 'auto', 'float32')


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Optimizer wrapper that runs the forward pass under ``torch.autocast('cpu', bfloat16)``.

    mmengine's ``AmpOptimWrapper`` needs CUDA. On CPU, bfloat16 has float32's exponent range,
    so no loss scaling is needed: parameters, gradients and optimizer state stay float32, while
    convolutions and matrix products run in bfloat16.

    Whether bfloat16 is faster depends on the CPU *and* the work (oneDNN's bf16 kernels without
    AMX: slower for R-50 inference at 800x1216, about twice as fast for the demo's training
    step; docs/benchmark.md), so ``dtype='auto'`` decides by measuring: the first
    ``probe_iters + 1`` iterations run in float32, the next ``probe_iters + 1`` in bfloat16 (the
    first of each untimed), and training continues in whichever had the shorter median
    iteration time (rank 0's choice under DDP). The decision is logged.

    Args:
        dtype: ``'bfloat16'`` (always), ``'auto'`` (measured) or ``'float32'`` (never: a
            config that sets this wrapper trained in plain float32 from the command line).
        probe_iters: Timed iterations per precision with ``'auto'``.
        **kwargs: Arguments of :class:`~mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype: str = 'bfloat16', probe_iters: int = 3, **kwargs) -> None:
        if dtype not in DTYPES:
            raise ValueError(f'CPUAmpOptimWrapper: dtype must be one of {DTYPES}, got {dtype!r}')
        if probe_iters < 1:
            raise ValueError(f'CPUAmpOptimWrapper: probe_iters must be >= 1, got {probe_iters}')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16
        self.probe_iters = probe_iters
        # None while probing; then whether autocast is on.
        self.use_autocast: bool | None = {'bfloat16': True, 'float32': False}.get(dtype)
        self._probe_times: list[float] = []
        self._last_start: float | None = None

    def _probe_autocast(self) -> bool:
        """Autocast for this iteration while probing; records the previous iteration's time."""
        now = time.perf_counter()
        if self._last_start is not None:
            self._probe_times.append(now - self._last_start)
        self._last_start = now
        per_mode = self.probe_iters + 1
        if len(self._probe_times) < 2 * per_mode:
            return len(self._probe_times) >= per_mode
        fp32 = statistics.median(self._probe_times[1:per_mode])
        bf16 = statistics.median(self._probe_times[per_mode + 1:])
        decision = [bf16 < fp32]
        broadcast_object_list(decision)  # every rank follows rank 0
        self.use_autocast = decision[0]
        MMLogger.get_current_instance().info(
            f'CPUAmpOptimWrapper: median iteration {fp32:.4f} s in float32, {bf16:.4f} s in '
            f'bfloat16; training continues in {"bfloat16" if self.use_autocast else "float32"}')
        return self.use_autocast

    def _off_cpu(self, model: nn.Module) -> bool:
        """Whether the model's parameters live on another device (CPU autocast would not touch
        them; timing two identical float32 modes would decide nothing): then autocast is off
        for the run, logged once."""
        device = next(model.parameters()).device
        if device.type == 'cpu':
            return False
        if self.use_autocast is not False:
            MMLogger.get_current_instance().info(
                f'CPUAmpOptimWrapper: the model is on {device}, not the CPU; training in '
                'float32 (on a GPU use mmengine\'s AmpOptimWrapper)')
            self.use_autocast = False
        return True

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """mmengine's context (gradient accumulation) plus CPU bfloat16 autocast when on."""
        if self._off_cpu(model):
            enabled = False
        elif self.use_autocast is not None:
            enabled = self.use_autocast
        else:
            enabled = self._probe_autocast()
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype,
                                                          enabled=enabled):
            yield
