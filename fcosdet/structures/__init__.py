from .bbox import bbox_overlaps
from .bbox_flip import FLIP_DIRECTIONS, bbox_flip, flip_bboxes_where
from .det_data_sample import DetDataSample, OptSampleList, SampleList

__all__ = [
    'DetDataSample', 'SampleList', 'OptSampleList', 'bbox_overlaps', 'bbox_flip',
    'flip_bboxes_where', 'FLIP_DIRECTIONS'
]
