from . import demo_dataset, samplers, transforms  # noqa: F401
from .coco import COCO_CLASSES, CocoDataset

__all__ = ['CocoDataset', 'COCO_CLASSES']
