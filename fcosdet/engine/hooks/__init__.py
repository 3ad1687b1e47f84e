from .check_invalid_loss_hook import CheckInvalidLossHook, NonFiniteLossError
from .visualization_hook import DetVisualizationHook

__all__ = ['CheckInvalidLossHook', 'NonFiniteLossError', 'DetVisualizationHook']
