"""Error-analysis functions over dumped detections (used by ``tools/analysis_tools``)."""
from .confusion_matrix import (
    calculate_confusion_matrix,
    format_confusion_matrix,
    image_confusion_matrix,
    normalize_rows,
)
from .det_results import (
    ImageDets,
    ImageGt,
    gt_of_data_info,
    load_det_results,
    pair_with_gt,
    results_with_gt,
)
from .image_ap import COCO_IOU_THRS, image_map, rank_images, voc_area_ap

__all__ = [
    'COCO_IOU_THRS', 'ImageDets', 'ImageGt', 'calculate_confusion_matrix',
    'format_confusion_matrix', 'gt_of_data_info', 'image_confusion_matrix', 'image_map',
    'load_det_results', 'normalize_rows', 'pair_with_gt', 'rank_images', 'results_with_gt',
    'voc_area_ap',
]
