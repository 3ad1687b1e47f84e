"""Element-wise weighting and reduction shared by all losses, and the exact zero loss of an
empty selection.

Shape letters: ``R`` points (loss rows), ``C`` classes.
"""
import torch
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


def full_precision(x: Tensor) -> Tensor:
    """``x`` in float32 (float64 kept): the dtype of every loss's math.

    Under mixed precision the predictions arrive in bfloat16/float16 (8/11 significant bits);
    the losses cast them (and their targets) up first, so targets, weights and the loss are
    float32 whatever the logits' dtype, as in MMDetection. A float32 tensor is returned as it
    is (no copy: float32 results stay bit-identical).
    """
    return x if x.dtype == torch.float64 else x.float()


def empty_loss(pred: Tensor) -> Tensor:
    """Float32 zero loss of a head with no positives, still attached to ``pred``'s graph.

    The sum over an empty selection of ``pred`` (MMDetection's ``pos_bbox_preds.sum()``): 0
    and a zero gradient even when ``pred`` holds inf or NaN (``pred.sum() * 0`` is NaN
    there), while every parameter behind ``pred`` stays in the graph, as DDP needs.

    Args:
        pred: Any prediction tensor, e.g. ``[N, R, 4]``.

    Returns:
        Scalar float32 0.
    """
    return pred.reshape(-1)[:0].float().sum()
