"""Varifocal loss of VarifocalNet (Zhang et al., CVPR 2021).

Shape letters: ``R`` points (loss rows), ``C`` classes.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from fcosdet.registry import MODELS

from .utils import check_reduction, full_precision, weight_reduce_loss


def varifocal_loss(pred: Tensor, target: Tensor, alpha: float = 0.75, gamma: float = 2.0,
                   iou_weighted: bool = True) -> Tensor:
    """Element-wise ``BCE(σ(p), q) · w`` with ``w = q`` (or 1) where ``q > 0`` and
    ``w = α · |σ(p) − q|^γ`` where ``q = 0``.

    Positives are weighted by their target IoU-aware score q (``iou_weighted``); only negatives
    are down-weighted focal-style, unlike the focal loss.

    Args:
        pred: ``[R, C]`` logits.
        target: ``[R, C]`` IoU-aware targets: the IoU of the (refined) box with its gt at the gt
            class of a positive, 0 elsewhere.
        alpha: Weight α of the negatives.
        gamma: Exponent γ of the negatives' modulating factor.
        iou_weighted: Weight positives by q (True) or by 1 (False).

    Returns:
        ``[R, C]`` loss.
    """
    target = target.to(pred.dtype)
    positive = (target > 0).to(pred.dtype)
    neg_weight = alpha * (pred.sigmoid() - target).abs().pow(gamma) * (1 - positive)
    pos_weight = target * positive if iou_weighted else positive
    bce = F.binary_cross_entropy_with_logits(pred, target, reduction='none')
    return bce * (pos_weight + neg_weight)


@MODELS.register_module()
class VarifocalLoss(nn.Module):
    """Varifocal loss with MMDetection's arguments.

    Args:
        use_sigmoid: Must be True (only the sigmoid form exists).
        alpha: Weight α of the negatives.
        gamma: Exponent γ of ``|σ − q|`` for the negatives.
        iou_weighted: Positives weighted by their target q.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: Multiplier of the loss.
    """

    def __init__(self, use_sigmoid: bool = True, alpha: float = 0.75, gamma: float = 2.0,
                 iou_weighted: bool = True, reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError('VarifocalLoss: only use_sigmoid=True is supported, got False')
        if alpha < 0:
            raise ValueError(f'VarifocalLoss: alpha must be >= 0, got {alpha!r}')
        self.use_sigmoid = use_sigmoid
        self.alpha = alpha
        self.gamma = gamma
        self.iou_weighted = iou_weighted
        self.reduction = check_reduction(reduction, 'VarifocalLoss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None,
                reduction_override: str | None = None) -> Tensor:
        """VFL of ``pred [R, C]`` against the dense target ``[R, C]``; ``weight`` ``[R]`` or
        ``[R, C]``; returns a scalar, or ``[R, C]`` with reduction ``'none'``."""
        reduction = check_reduction(reduction_override or self.reduction, 'VarifocalLoss')
        if target.shape != pred.shape:
            raise ValueError(f'VarifocalLoss: target {tuple(target.shape)} must match pred '
                             f'{tuple(pred.shape)}')
        pred = full_precision(pred)
        loss = varifocal_loss(pred, target, self.alpha, self.gamma, self.iou_weighted)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
