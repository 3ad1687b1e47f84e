from .check_invalid_loss_hook import CheckInvalidLossHook, NonFiniteLossError
from .fast_path_hook import FastPathHook
from .visualization_hook import DetVisualizationHook

__all__ = ['CheckInvalidLossHook', 'NonFiniteLossError', 'FastPathHook', 'DetVisualizationHook']
