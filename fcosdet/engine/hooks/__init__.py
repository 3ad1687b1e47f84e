from .channels_last_hook import ChannelsLastHook
from .check_invalid_loss_hook import CheckInvalidLossHook, NonFiniteLossError
from .checkpoint_hook import CheckpointHook, NonFiniteCheckpointError
from .fast_path_hook import FastPathHook
from .num_class_check_hook import NumClassCheckHook
from .set_epoch_info_hook import SetEpochInfoHook
from .visualization_hook import DetVisualizationHook

__all__ = ['ChannelsLastHook', 'CheckInvalidLossHook', 'NonFiniteLossError', 'CheckpointHook',
           'NonFiniteCheckpointError', 'FastPathHook', 'NumClassCheckHook', 'DetVisualizationHook',
           'SetEpochInfoHook']
