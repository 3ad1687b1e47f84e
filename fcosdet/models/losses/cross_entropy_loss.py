"""Binary (sigmoid) and categorical (softmax) cross-entropy losses.

Shape letters: ``R`` points, ``C`` classes.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from fcosdet.registry import MODELS

from .utils import check_reduction, full_precision, weight_reduce_loss


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Cross-entropy on logits; FCOS uses the sigmoid form for centre-ness.

    Args:
        use_sigmoid: Binary cross-entropy with logits per element; otherwise softmax
            cross-entropy over the last dim.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: Multiplier of the loss.
    """

    def __init__(self, use_sigmoid: bool = True, reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.use_sigmoid = use_sigmoid
        self.reduction = check_reduction(reduction, 'CrossEntropyLoss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None,
                reduction_override: str | None = None) -> Tensor:
        """Cross-entropy of ``pred`` against ``target``.

        Args:
            pred: Sigmoid: logits ``[R]`` or ``[R, C]``. Softmax: logits ``[R, C]``.
            target: Sigmoid: float targets in [0, 1] shaped like ``pred``. Softmax: long ``[R]``.
            weight: ``[R]`` weights (or shaped like ``pred`` with sigmoid).
            avg_factor: Divisor of the summed loss for ``'mean'``.
            reduction_override: Replaces ``reduction`` for this call.

        Returns:
            Scalar loss, or the element-wise loss (``[R]`` / ``[R, C]``) with ``'none'``.
        """
        reduction = check_reduction(reduction_override or self.reduction, 'CrossEntropyLoss')
        pred = full_precision(pred)
        if self.use_sigmoid:
            if target.shape != pred.shape:
                raise ValueError(f'CrossEntropyLoss: sigmoid target {tuple(target.shape)} must '
                                 f'match pred {tuple(pred.shape)}')
            loss = F.binary_cross_entropy_with_logits(pred, target.to(pred.dtype),
                                                      reduction='none')
        else:
            if pred.dim() != 2 or target.shape != pred.shape[:1]:
                raise ValueError(f'CrossEntropyLoss: softmax needs pred [R, C] and target [R], '
                                 f'got {tuple(pred.shape)} and {tuple(target.shape)}')
            loss = F.cross_entropy(pred, target.long(), reduction='none')
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
