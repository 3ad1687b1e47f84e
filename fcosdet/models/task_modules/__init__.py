from .distance_point_bbox_coder import DistancePointBBoxCoder
from .fcos_assigner import FCOSAssigner, centerness_target
from .pad_gt import pad_gt_instances
from .point_generator import MlvlPointGenerator

__all__ = ['DistancePointBBoxCoder', 'FCOSAssigner', 'MlvlPointGenerator', 'centerness_target',
           'pad_gt_instances']
