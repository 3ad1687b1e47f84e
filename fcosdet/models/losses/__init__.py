from .cross_entropy_loss import CrossEntropyLoss
from .focal_loss import FocalLoss, sigmoid_focal_loss
from .gfocal_loss import (
    DistributionFocalLoss,
    QualityFocalLoss,
    distribution_focal_loss,
    quality_focal_loss,
)
from .iou_loss import GIoULoss, IoULoss, giou_loss, iou_loss
from .utils import empty_loss, full_precision, weight_reduce_loss
from .varifocal_loss import VarifocalLoss, varifocal_loss

__all__ = ['CrossEntropyLoss', 'DistributionFocalLoss', 'FocalLoss', 'GIoULoss', 'IoULoss',
           'QualityFocalLoss', 'distribution_focal_loss', 'giou_loss', 'iou_loss',
           'quality_focal_loss', 'sigmoid_focal_loss', 'varifocal_loss', 'VarifocalLoss',
           'empty_loss', 'full_precision', 'weight_reduce_loss']
