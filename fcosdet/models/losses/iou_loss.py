"""IoU and GIoU losses of aligned box pairs.

Shape letters: ``R`` box pairs (positive points). Boxes are ``(x1, y1, x2, y2)``.
"""
from torch import Tensor, nn

from fcosdet.registry import MODELS
from fcosdet.structures.bbox import bbox_overlaps

from .utils import check_reduction, empty_loss, full_precision, weight_reduce_loss

IOU_MODES = ('log', 'linear', 'square')


def iou_loss(pred: Tensor, target: Tensor, mode: str = 'log', eps: float = 1e-6) -> Tensor:
    """Element-wise IoU loss: ``−ln(IoU)`` (IoU clamped at eps), ``1 − IoU`` or ``1 − IoU²``.

    Args:
        pred: ``[R, 4]`` predicted boxes.
        target: ``[R, 4]`` target boxes.
        mode: ``'log'``, ``'linear'`` or ``'square'``.
        eps: Lower bound of the IoU (log mode) and of the union area.

    Returns:
        ``[R]`` loss.
    """
    ious = bbox_overlaps(pred, target, mode='iou', is_aligned=True, eps=eps)
    if mode == 'log':
        return -ious.clamp(min=eps).log()
    if mode == 'linear':
        return 1 - ious
    return 1 - ious.pow(2)


def giou_loss(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """Element-wise ``1 − GIoU`` of ``[R, 4]`` box pairs -> ``[R]``."""
    return 1 - bbox_overlaps(pred, target, mode='giou', is_aligned=True, eps=eps)


class _BoxPairLoss(nn.Module):
    """Weighting, reduction and the empty case shared by the IoU-type losses.

    Args:
        eps: Lower bound of areas (and of the IoU in log mode).
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: Multiplier of the loss.
    """

    def __init__(self, eps: float, reduction: str, loss_weight: float) -> None:
        super().__init__()
        self.eps = eps
        self.reduction = check_reduction(reduction, type(self).__name__)
        self.loss_weight = loss_weight

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[R]`` loss of ``[R, 4]`` box pairs."""
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None,
                reduction_override: str | None = None) -> Tensor:
        """Loss of the box pairs ``(pred[i], target[i])``.

        Args:
            pred: ``[R, 4]`` predicted boxes.
            target: ``[R, 4]`` target boxes.
            weight: ``[R]`` weights (e.g. centre-ness targets).
            avg_factor: Divisor of the summed loss for ``'mean'``.
            reduction_override: Replaces ``reduction`` for this call.

        Returns:
            Scalar loss (exactly 0, still attached to ``pred``'s graph, when R = 0), or
            ``[R]`` with reduction ``'none'``.
        """
        reduction = check_reduction(reduction_override or self.reduction, type(self).__name__)
        if pred.shape != target.shape or pred.shape[-1:] != (4,):
            raise ValueError(f'{type(self).__name__}: pred {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} must both be [R, 4]')
        if pred.shape[0] == 0 and reduction != 'none':
            return empty_loss(pred)
        pred = full_precision(pred)
        loss = self.elementwise(pred, full_precision(target))
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


@MODELS.register_module()
class IoULoss(_BoxPairLoss):
    """IoU loss of aligned box pairs.

    Args:
        mode: ``'log'`` (−ln IoU), ``'linear'`` (1 − IoU) or ``'square'`` (1 − IoU²).
        eps: Lower bound of the IoU in log mode and of the union area.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: Multiplier of the loss.
    """

    def __init__(self, mode: str = 'log', eps: float = 1e-6, reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(eps, reduction, loss_weight)
        if mode not in IOU_MODES:
            raise ValueError(f"IoULoss: mode must be one of {IOU_MODES}, got '{mode}'")
        self.mode = mode

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[R]`` IoU loss of ``[R, 4]`` box pairs."""
        return iou_loss(pred, target, self.mode, self.eps)


@MODELS.register_module()
class GIoULoss(_BoxPairLoss):
    """Generalised IoU loss ``1 − GIoU`` of aligned box pairs.

    Args:
        eps: Lower bound of the union and enclosing areas.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: Multiplier of the loss.
    """

    def __init__(self, eps: float = 1e-6, reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(eps, reduction, loss_weight)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[R]`` GIoU loss of ``[R, 4]`` box pairs."""
        return giou_loss(pred, target, self.eps)
