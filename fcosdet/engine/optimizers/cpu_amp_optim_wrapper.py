"""Mixed precision on CPU: bfloat16 autocast around the forward pass, always or where measured
faster (``dtype='auto'``); the choice is saved in checkpoints and kept on ``--resume``."""
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from mmengine.dist import broadcast_object_list
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from fcosdet.registry import OPTIM_WRAPPERS

from .precision_probe import PrecisionProbe, PrecisionRecord, describe

DTYPES = ('bfloat16', 'auto', 'float32')
# the wrapper's own config keys (tools/train.py --amp drops them when it switches to CUDA AMP)
CPU_AMP_KEYS = ('dtype', 'probe_iters', 'min_speedup')
# key of the precision record in the wrapper's state dict (the checkpoint's 'optimizer' entry)
STATE_KEY = 'cpu_amp_precision'
_clock = time.perf_counter  # module attribute, so tests can drive the probe with a fake clock


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Optimizer wrapper that runs the forward pass under ``torch.autocast('cpu', bfloat16)``.

    mmengine's ``AmpOptimWrapper`` needs CUDA. On CPU, bfloat16 has float32's exponent range,
    so no loss scaling is needed: parameters, gradients and optimizer state stay float32, while
    convolutions and matrix products run in bfloat16.

    Whether bfloat16 is faster depends on the CPU *and* the work (oneDNN's bf16 kernels without
    AMX: slower for R-50 inference at 800x1216, about twice as fast for the demo's training
    step; docs/benchmark.md), so ``dtype='auto'`` decides by measuring
    (:class:`~fcosdet.engine.optimizers.precision_probe.PrecisionProbe`): the first
    ``2 * (probe_iters + 1)`` iterations alternate float32 and bfloat16, one of each untimed
    (warm-up), the others timed from the forward pass to the end of the parameter update and
    interleaved in ABBA order; training continues in bfloat16 when its median step is at least
    ``min_speedup`` times faster, else in float32 (rank 0's choice under DDP). The decision and
    both medians are logged in one line and saved in the checkpoints (``state_dict()[STATE_KEY]``,
    plain data); ``--resume`` reuses it instead of probing again. A config with a fixed
    ``dtype`` uses it whatever a resumed checkpoint says (logged when they differ).

    Args:
        dtype: ``'bfloat16'`` (always), ``'auto'`` (measured) or ``'float32'`` (never: a
            config that sets this wrapper trained in plain float32 from the command line).
        probe_iters: Timed iterations per precision with ``'auto'``.
        min_speedup: With ``'auto'``, how many times faster (median) bfloat16 must be to be
            chosen; float32 is exact, so a tie keeps it.
        **kwargs: Arguments of :class:`~mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype: str = 'bfloat16', probe_iters: int = 5, min_speedup: float = 1.05,
                 **kwargs) -> None:
        if dtype not in DTYPES:
            raise ValueError(f'CPUAmpOptimWrapper: dtype must be one of {DTYPES}, got {dtype!r}')
        if probe_iters < 1:
            raise ValueError(f'CPUAmpOptimWrapper: probe_iters must be >= 1, got {probe_iters}')
        if not min_speedup > 0:
            raise ValueError(f'CPUAmpOptimWrapper: min_speedup must be > 0, got {min_speedup}')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16
        self.dtype = dtype
        self.min_speedup = min_speedup
        self.probe = PrecisionProbe(probe_iters)
        # None while undecided: 'auto' until the probe ends (or a checkpoint's decision loads)
        self.record: PrecisionRecord | None = None if dtype == 'auto' else dict(
            precision=dtype, source=f"dtype='{dtype}'")
        self._probe_step = 0  # probe steps started
        self._open_step: tuple[int, float] | None = None  # (probe step, start time) being timed
        self._logged = False
        self._resumed = False

    @property
    def use_autocast(self) -> bool | None:
        """Whether training runs under bfloat16 autocast; None while still probing."""
        return None if self.record is None else self.record['precision'] == 'bfloat16'

    def _log_once(self) -> None:
        """Log the precision in use, one line, the first time it is known."""
        if not self._logged:
            self._logged = True
            prefix = 'resumed, ' if self._resumed else ''
            MMLogger.get_current_instance().info(
                f'CPUAmpOptimWrapper: {prefix}{describe(self.record)}; saved in checkpoints and '
                'kept by --resume')

    def _close_probe_step(self, now: float) -> None:
        """Record the duration of the probe step being timed, if any."""
        if self._open_step is not None:
            step, start = self._open_step
            self.probe.record(step, now - start)
            self._open_step = None

    def _probe_precision(self) -> str:
        """The precision of this iteration while probing; decides once every step is timed."""
        now = _clock()
        self._close_probe_step(now)  # an iteration without update_params: timed up to now
        if self._probe_step < self.probe.num_steps:
            self._open_step = (self._probe_step, now)
            self._probe_step += 1
            return self.probe.precision(self._probe_step - 1)
        decision = [self.probe.result(self.min_speedup)]
        broadcast_object_list(decision)  # every rank follows rank 0
        self.record = decision[0]
        self._log_once()
        return self.record['precision']

    def _off_cpu(self, model: nn.Module) -> bool:
        """Whether the model's parameters live on another device (CPU autocast would not touch
        them; timing two identical float32 modes would decide nothing): then the run is
        float32, logged once."""
        device = next(model.parameters()).device
        if device.type == 'cpu':
            return False
        if self.record is None or self.record['precision'] != 'float32':
            self.record = dict(precision='float32', source=f'the model is on {device}, not the '
                               "CPU; on a GPU use mmengine's AmpOptimWrapper")
            self._logged = False
        self._log_once()
        return True

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """mmengine's context (gradient accumulation) plus CPU bfloat16 autocast when on."""
        if self._off_cpu(model):
            enabled = False
        elif self.record is None:
            enabled = self._probe_precision() == 'bfloat16'
        else:
            self._log_once()
            enabled = self.record['precision'] == 'bfloat16'
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype,
                                                          enabled=enabled):
            yield

    def update_params(self, loss: Tensor, step_kwargs: dict | None = None,
                      zero_kwargs: dict | None = None) -> None:
        """mmengine's backward + step; while probing, the end of the timed step."""
        super().update_params(loss, step_kwargs, zero_kwargs)
        if self._open_step is not None:
            self._close_probe_step(_clock())

    def state_dict(self) -> dict:
        """The optimizer's state dict plus the precision record (once decided)."""
        state = super().state_dict()
        if self.record is not None:
            state[STATE_KEY] = dict(self.record)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load the optimizer state; with ``dtype='auto'``, adopt the saved precision (no
        probe). A checkpoint saved before its probe ended has none: the probe starts over."""
        state_dict = dict(state_dict)
        record = state_dict.pop(STATE_KEY, None)
        super().load_state_dict(state_dict)
        if record is None:
            return
        if self.dtype == 'auto':
            self.record, self._resumed, self._logged = dict(record), True, False
        elif record['precision'] != self.record['precision']:
            MMLogger.get_current_instance().warning(
                f'CPUAmpOptimWrapper: the checkpoint trained in {record["precision"]} '
                f'({record["source"]}); continuing in {self.record["precision"]} as '
                f'dtype={self.dtype!r} says')
