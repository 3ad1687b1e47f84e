"""Task-aligned assignment of TOOD (Feng et al., ICCV 2021), batched over the images.

Shape letters: ``N`` images, ``L`` levels, ``R_l`` priors of level l, ``R`` priors of all levels,
``M`` gt boxes per image (padded), ``C`` classes (background is label ``C``), ``T`` candidates
per gt (``min(topk, R)``).
"""
import torch
from torch import Tensor

from fcosdet.models.task_modules.assign_result import DenseAssignResult
from fcosdet.models.task_modules.atss_assigner import centres_inside, gather_assignment
from fcosdet.registry import TASK_UTILS
from fcosdet.structures.bbox import bbox_overlaps

# MMDetection's ``10e-8`` in the normalisation t / (max t + eps) · max u.
NORM_EPS = 1e-7


@TASK_UTILS.register_module()
class TaskAlignedAssigner:
    """Per gt, the ``topk`` priors of highest alignment metric ``t = s^α · u^β`` are
    candidates (``s``: predicted probability of the gt's class, ``u``: IoU of the predicted box
    with the gt); a candidate is positive when ``t > 0`` and its prior's centre lies inside the
    gt (more than 0.01 px from every side). A prior positive for several gts takes the one of
    highest IoU ``u``, equal IoUs the lowest gt index (MMDetection's rules).

    Candidates are chosen among all valid priors first and only then filtered by the centre
    rule, as MMDetection does (so a gt may get fewer than ``topk`` positives). Of priors whose
    metric equals the k-th largest, the lowest prior indices are taken, so the choice is
    deterministic.

    Args:
        topk (int): Candidates per gt (TOOD: 13).
        iou_calculator (dict | None): Only MMDetection's ``dict(type='BboxOverlaps2D')``.
    """

    def __init__(self, topk: int = 13, iou_calculator: dict | None = None) -> None:
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f'TaskAlignedAssigner: topk must be a positive int, got {topk!r}')
        if iou_calculator is not None and iou_calculator.get('type') != 'BboxOverlaps2D':
            raise ValueError('TaskAlignedAssigner: iou_calculator must be '
                             f"dict(type='BboxOverlaps2D'), got {iou_calculator!r}")
        self.topk = topk

    @torch.no_grad()
    def assign(self, priors: list[Tensor], gt_bboxes: Tensor, gt_labels: Tensor,
               gt_valid: Tensor, num_classes: int, prior_valid: Tensor | None = None,
               pred_scores: Tensor | None = None, pred_bboxes: Tensor | None = None,
               alpha: float = 1.0, beta: float = 6.0) -> DenseAssignResult:
        """Assign the priors of every image.

        Args:
            priors (list[Tensor]): Per level ``[R_l, 4]`` prior boxes (their centres matter).
            gt_bboxes (Tensor): ``[N, M, 4]`` gt boxes, as from ``pad_gt_instances``.
            gt_labels (Tensor): ``[N, M]`` long labels in ``[0, C)``.
            gt_valid (Tensor): ``[N, M]`` bool, False for padding rows.
            num_classes (int): C, also the background label.
            prior_valid (Tensor | None): ``[N, R]`` bool; False priors are never positive.
            pred_scores (Tensor): ``[N, R, C]`` class probabilities (already activated).
            pred_bboxes (Tensor): ``[N, R, 4]`` decoded predicted boxes (pixels).
            alpha (float): Exponent of the score in the metric.
            beta (float): Exponent of the IoU in the metric.

        Returns:
            DenseAssignResult: ``gt_inds``, ``labels``, ``bbox_targets`` (gt boxes),
            ``max_overlaps`` (IoU of the predicted box with its gt) and ``assign_metrics``
            (its ``t``), each ``[N, R, ...]``, 0 / background where not positive.
        """
        if pred_scores is None or pred_bboxes is None:
            raise ValueError('TaskAlignedAssigner.assign needs pred_scores and pred_bboxes')
        flat_priors = torch.cat(priors)
        num_images, num_priors = pred_scores.shape[:2]
        ious = bbox_overlaps(pred_bboxes, gt_bboxes)  # [N, R, M]
        labels = gt_labels[:, None, :].expand(-1, num_priors, -1)
        metrics = pred_scores.gather(2, labels) ** alpha * ious ** beta  # [N, R, M]
        if gt_bboxes.shape[1] == 0:
            empty = ious.new_zeros((num_images, num_priors, 0), dtype=torch.bool)
            result = gather_assignment(empty, ious, gt_bboxes, gt_labels, num_classes)
            return result._replace(assign_metrics=ious.new_zeros((num_images, num_priors)))
        # Invalid priors rank below every valid one (metrics are >= 0) and are never positive.
        ranked = metrics if prior_valid is None else metrics.masked_fill(
            ~prior_valid[..., None], -1.0)
        chosen = _top_k_lowest_index_first(ranked.transpose(1, 2), min(self.topk, num_priors))
        prior_ctr = (flat_priors[:, :2] + flat_priors[:, 2:4]) / 2.0  # [R, 2]
        inside = centres_inside(prior_ctr[None, :, None, 0], prior_ctr[None, :, None, 1],
                                gt_bboxes)  # [N, R, M]
        positive = chosen.transpose(1, 2) & (ranked > 0) & inside & gt_valid[:, None, :]
        result = gather_assignment(positive, ious, gt_bboxes, gt_labels, num_classes)
        assigned = metrics.gather(2, result.gt_inds.clamp(min=0)[..., None])[..., 0]
        return result._replace(assign_metrics=torch.where(result.pos_mask, assigned, 0.0))


def _top_k_lowest_index_first(values: Tensor, k: int) -> Tensor:
    """Bool ``[N, M, R]``: the ``k`` largest of each row of ``values [N, M, R]``; of values
    equal to the k-th largest, the lowest indices (``topk`` leaves that order unspecified, and
    a stable sort of every row costs ~40x more)."""
    kth = values.topk(k, dim=2).values[..., -1:]  # [N, M, 1]
    above = values > kth
    tied = values == kth
    room = k - above.sum(dim=2, keepdim=True)
    return above | (tied & (tied.cumsum(dim=2) <= room))


def normalized_alignment(gt_inds: Tensor, metrics: Tensor, ious: Tensor,
                         eps: float = NORM_EPS) -> Tensor:
    """TOOD's soft targets ``t / (max t + eps) · max u``, the maxima over the positives of
    the same gt.

    Args:
        gt_inds (Tensor): Long ``[N, R]`` assigned gt (``-1`` background).
        metrics (Tensor): ``[N, R]`` alignment metric ``t`` of each positive.
        ious (Tensor): ``[N, R]`` IoU ``u`` of each positive.
        eps (float): Added to the maximum metric (MMDetection's 1e-7).

    Returns:
        Tensor: ``[N, R]`` normalised targets, 0 for background.
    """
    pos = gt_inds >= 0
    if not bool(pos.any()):
        return torch.zeros_like(metrics)
    index = gt_inds.clamp(min=0)
    metrics = torch.where(pos, metrics, 0.0)
    ious = torch.where(pos, ious, 0.0)
    # Per (image, gt) maxima; background rows add zeros, which never exceed a maximum >= 0.
    size = (gt_inds.shape[0], int(gt_inds.max()) + 1)
    max_metric = metrics.new_zeros(size).scatter_reduce(1, index, metrics, 'amax')
    max_iou = ious.new_zeros(size).scatter_reduce(1, index, ious, 'amax')
    norm = metrics / (max_metric.gather(1, index) + eps) * max_iou.gather(1, index)
    return torch.where(pos, norm, 0.0)
