"""Generalized focal losses of GFL (Li et al., NeurIPS 2020): quality focal loss (QFL) and
distribution focal loss (DFL).

Shape letters: ``R`` rows (points, or points × 4 sides for DFL), ``C`` classes (label ``C`` is
background), ``B = reg_max + 1`` bins of a side's distribution.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from fcosdet.registry import MODELS

from .utils import check_reduction, full_precision, weight_reduce_loss


def quality_focal_loss(pred: Tensor, target: Tensor, beta: float = 2.0,
                       activated: bool = False) -> Tensor:
    """``QFL = −|y − σ|^β · ((1 − y) log(1 − σ) + y log σ)`` summed over classes.

    Args:
        pred: ``[R, C]`` logits (probabilities when ``activated``).
        target: ``[R, C]`` soft targets: the quality (e.g. IoU) at the true class of a
            positive, 0 elsewhere.
        beta: Exponent β of the modulating factor.
        activated: ``pred`` already holds probabilities.

    Returns:
        ``[R]`` loss.
    """
    prob = pred if activated else pred.sigmoid()
    bce = F.binary_cross_entropy if activated else F.binary_cross_entropy_with_logits
    loss = bce(pred, target, reduction='none') * (target - prob).abs().pow(beta)
    return loss.sum(dim=1)


def distribution_focal_loss(pred: Tensor, label: Tensor) -> Tensor:
    """``DFL = −((y_{i+1} − y) log S_i + (y − y_i) log S_{i+1})`` with ``y_i = ⌊y⌋``, ``S``
    the softmax of ``pred``.

    Args:
        pred: ``[R, B]`` logits of the distribution over the integer distances 0..B−1.
        label: ``[R]`` target distances in ``[0, B − 1)``.

    Returns:
        ``[R]`` loss.
    """
    left = label.long()
    right = left + 1
    weight_left = right.to(label.dtype) - label
    weight_right = label - left.to(label.dtype)
    return (F.cross_entropy(pred, left, reduction='none') * weight_left
            + F.cross_entropy(pred, right, reduction='none') * weight_right)


@MODELS.register_module()
class QualityFocalLoss(nn.Module):
    """Quality focal loss: sigmoid classification against an IoU-valued soft target.

    Args:
        use_sigmoid: Must be True (only the sigmoid form exists).
        beta: Exponent β of ``|y − σ|``.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: Multiplier of the loss.
        activated: Predictions are probabilities already (TOOD), not logits.
    """

    def __init__(self, use_sigmoid: bool = True, beta: float = 2.0, reduction: str = 'mean',
                 loss_weight: float = 1.0, activated: bool = False) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError('QualityFocalLoss: only use_sigmoid=True is supported, got False')
        self.use_sigmoid = use_sigmoid
        self.beta = beta
        self.reduction = check_reduction(reduction, 'QualityFocalLoss')
        self.loss_weight = loss_weight
        self.activated = activated

    def forward(self, pred: Tensor, target: tuple[Tensor, Tensor] | Tensor,
                weight: Tensor | None = None, avg_factor: float | Tensor | None = None,
                reduction_override: str | None = None) -> Tensor:
        """QFL of ``pred`` against ``target``.

        Args:
            pred: ``[R, C]`` logits (probabilities when ``activated``).
            target: ``(labels, scores)``: long ``[R]`` labels in ``[0, C]`` (C = background)
                and ``[R]`` qualities of the positives; or a dense ``[R, C]`` soft target.
            weight: ``[R]`` row weights.
            avg_factor: Divisor of the summed loss for ``'mean'``.
            reduction_override: Replaces ``reduction`` for this call.

        Returns:
            Scalar loss, or ``[R]`` with reduction ``'none'``.
        """
        reduction = check_reduction(reduction_override or self.reduction, 'QualityFocalLoss')
        pred = full_precision(pred)
        if isinstance(target, (tuple, list)):
            target = _dense_quality_target(pred, *target)
        elif target.shape != pred.shape:
            raise ValueError(f'QualityFocalLoss: target {tuple(target.shape)} must be '
                             f'(labels, scores) or match pred {tuple(pred.shape)}')
        loss = quality_focal_loss(pred, target.to(pred.dtype), self.beta, self.activated)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


def _dense_quality_target(pred: Tensor, labels: Tensor, scores: Tensor) -> Tensor:
    """``[R, C]`` target: ``scores[r]`` at column ``labels[r]`` of foreground rows, else 0."""
    num_classes = pred.shape[1]
    if labels.shape != pred.shape[:1] or scores.shape != pred.shape[:1]:
        raise ValueError(f'QualityFocalLoss: labels {tuple(labels.shape)} and scores '
                         f'{tuple(scores.shape)} must be [R] for pred {tuple(pred.shape)}')
    # One extra column for the background label C, dropped right away.
    one_hot = F.one_hot(labels.long().clamp(min=0), num_classes + 1)[:, :num_classes]
    return one_hot.to(pred.dtype) * scores.to(pred.dtype)[:, None]


@MODELS.register_module()
class DistributionFocalLoss(nn.Module):
    """Distribution focal loss on the discretised distance distribution of each box side.

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: Multiplier of the loss.
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction, 'DistributionFocalLoss')
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None,
                reduction_override: str | None = None) -> Tensor:
        """DFL of ``pred`` against ``target``.

        Args:
            pred: ``[R, B]`` distribution logits.
            target: ``[R]`` distances in ``[0, B − 1)``.
            weight: ``[R]`` row weights.
            avg_factor: Divisor of the summed loss for ``'mean'``.
            reduction_override: Replaces ``reduction`` for this call.

        Returns:
            Scalar loss, or ``[R]`` with reduction ``'none'``.
        """
        reduction = check_reduction(reduction_override or self.reduction,
                                    'DistributionFocalLoss')
        if pred.dim() != 2 or target.shape != pred.shape[:1]:
            raise ValueError(f'DistributionFocalLoss: pred must be [R, B] and target [R], got '
                             f'{tuple(pred.shape)} and {tuple(target.shape)}')
        if target.numel() and (bool((target < 0).any())
                               or bool((target >= pred.shape[1] - 1).any())):
            raise ValueError(f'DistributionFocalLoss: targets must lie in [0, {pred.shape[1] - 1})'
                             f', got [{float(target.min())}, {float(target.max())}]')
        pred = full_precision(pred)
        loss = distribution_focal_loss(pred, full_precision(target))
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)

