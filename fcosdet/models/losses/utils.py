"""Element-wise weighting and reduction shared by all losses.

Shape letters: ``R`` points (loss rows), ``C`` classes.
"""
from torch import Tensor

REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction: str, owner: str) -> str:
    """Return ``reduction`` if it is one of ``REDUCTIONS``, else raise a ValueError naming it."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{owner}: reduction must be one of {REDUCTIONS}, got '{reduction}'")
    return reduction


def weight_reduce_loss(loss: Tensor, weight: Tensor | None = None, reduction: str = 'mean',
                       avg_factor: float | Tensor | None = None) -> Tensor:
    """Multiply an element-wise loss by ``weight``, then reduce it.

    Args:
        loss: Element-wise loss, e.g. ``[R]`` or ``[R, C]``.
        weight: Weight broadcastable after right-padding with singleton dims, e.g. ``[R]``
            for a ``[R, C]`` loss.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor: With ``'mean'``, the loss sum is divided by it instead of by
            ``loss.numel()``.

    Returns:
        The reduced loss (a scalar), or the weighted loss with ``'none'``.

    Raises:
        ValueError: unknown reduction, or ``avg_factor`` together with ``'sum'``.
    """
    check_reduction(reduction, 'weight_reduce_loss')
    if weight is not None:
        if weight.dim() < loss.dim():
            weight = weight.reshape(weight.shape + (1,) * (loss.dim() - weight.dim()))
        loss = loss * weight
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        if avg_factor is not None:
            raise ValueError("weight_reduce_loss: avg_factor can not be used with reduction='sum'")
        return loss.sum()
    if avg_factor is None:
        return loss.mean()
    return loss.sum() / avg_factor
