from .cpu_amp_optim_wrapper import CPU_AMP_KEYS, STATE_KEY, CPUAmpOptimWrapper
from .precision_probe import PrecisionProbe

__all__ = ['CPU_AMP_KEYS', 'STATE_KEY', 'CPUAmpOptimWrapper', 'PrecisionProbe']
