"""Sigmoid focal loss (Lin et al., 2017).

Shape letters: ``R`` points, ``C`` classes (label ``C`` is background).
"""
import torch.nn.functional as F
from torch import Tensor, nn

from fcosdet.registry import MODELS

from .utils import check_reduction, full_precision, weight_reduce_loss


def sigmoid_focal_loss(pred: Tensor, target: Tensor, gamma: float = 2.0,
                       alpha: float = 0.25, activated: bool = False) -> Tensor:
    """Element-wise ``FL = −α_t (1 − p_t)^γ log(p_t)`` with ``p = sigmoid(pred)``.

    Args:
        pred: ``[R, C]`` logits (probabilities ``p`` when ``activated``).
        target: ``[R, C]`` float targets in [0, 1] (one-hot, or all-zero for background).
        gamma: Focusing exponent γ.
        alpha: Weight α of positives (``1 − α`` for negatives).
        activated: ``pred`` already holds probabilities (TOOD's warm-up).

    Returns:
        ``[R, C]`` loss.
    """
    prob = pred if activated else pred.sigmoid()
    one_minus_pt = prob * (1 - target) + (1 - prob) * target
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    # −log(p_t): stably from the logits, or clamped at 100 by binary_cross_entropy.
    bce = F.binary_cross_entropy if activated else F.binary_cross_entropy_with_logits
    return alpha_t * one_minus_pt.pow(gamma) * bce(pred, target, reduction='none')


@MODELS.register_module()
class FocalLoss(nn.Module):
    """Sigmoid focal loss over C foreground classes.

    Args:
        use_sigmoid: Must be True (only the sigmoid form is implemented).
        gamma: Focusing exponent γ.
        alpha: Weight α of positives.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: Multiplier of the loss.
        activated: Predictions are probabilities already (TOOD), not logits.
    """

    def __init__(self, use_sigmoid: bool = True, gamma: float = 2.0, alpha: float = 0.25,
                 reduction: str = 'mean', loss_weight: float = 1.0,
                 activated: bool = False) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError('FocalLoss: only use_sigmoid=True is supported, got False')
        self.use_sigmoid = use_sigmoid
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = check_reduction(reduction, 'FocalLoss')
        self.loss_weight = loss_weight
        self.activated = activated

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None,
                reduction_override: str | None = None) -> Tensor:
        """Focal loss of ``pred`` against ``target``.

        Args:
            pred: ``[R, C]`` logits (probabilities when ``activated``).
            target: Long ``[R]`` labels in ``[0, C]`` (C = background) or float one-hot ``[R, C]``.
            weight: ``[R]`` or ``[R, C]`` element weights.
            avg_factor: Divisor of the summed loss for ``'mean'`` (e.g. the number of positives).
            reduction_override: Replaces ``reduction`` for this call.

        Returns:
            Scalar loss, or ``[R, C]`` with reduction ``'none'``.
        """
        reduction = check_reduction(reduction_override or self.reduction, 'FocalLoss')
        pred = full_precision(pred)
        num_classes = pred.shape[-1]
        if target.dim() == pred.dim() - 1:
            # One extra column for the background label C, dropped right away.
            target = F.one_hot(target.long(), num_classes + 1)[..., :num_classes]
        elif target.shape != pred.shape:
            raise ValueError(f'FocalLoss: target {tuple(target.shape)} must be [R] labels or '
                             f'match pred {tuple(pred.shape)}')
        loss = sigmoid_focal_loss(pred, target.to(pred.dtype), self.gamma, self.alpha,
                                  self.activated)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
