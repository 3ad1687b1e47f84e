from .anchor_generator import AnchorGenerator
from .assign_result import DenseAssignResult
from .atss_assigner import ATSSAssigner
from .bbox_clip import clip_bboxes
from .delta_xywh_bbox_coder import DeltaXYWHBBoxCoder
from .distance_point_bbox_coder import DistancePointBBoxCoder
from .fcos_assigner import FCOSAssigner, centerness_target
from .pad_gt import pad_gt_instances
from .point_generator import MlvlPointGenerator
from .task_aligned_assigner import TaskAlignedAssigner, normalized_alignment

__all__ = ['ATSSAssigner', 'AnchorGenerator', 'DeltaXYWHBBoxCoder', 'DenseAssignResult',
           'DistancePointBBoxCoder', 'FCOSAssigner', 'MlvlPointGenerator', 'centerness_target',
           'TaskAlignedAssigner', 'clip_bboxes', 'normalized_alignment', 'pad_gt_instances']
