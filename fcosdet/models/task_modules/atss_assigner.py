"""Adaptive training sample selection (Zhang et al., CVPR 2020), batched over the images.

Shape letters: ``N`` images, ``L`` levels, ``R_l`` priors of level l, ``R`` priors of all levels,
``M`` gt boxes per image (padded), ``C`` classes (background is label ``C``), ``T`` candidates
per gt (sum over levels of ``min(topk, R_l)``).
"""
import torch
from torch import Tensor

from fcosdet.models.task_modules.assign_result import DenseAssignResult
from fcosdet.registry import TASK_UTILS
from fcosdet.structures.bbox import bbox_overlaps

INF = 100000000  # MMDetection's sentinel: -INF marks "not a positive of this gt"
# A prior's centre must lie this far (pixels) inside the box on every side, as MMDetection.
INSIDE_EPS = 0.01


@TASK_UTILS.register_module()
class ATSSAssigner:
    """ATSS: per gt, the ``topk`` priors of each level whose centres are nearest to the gt
    centre are candidates; a candidate is positive when its quality is at least the mean + std
    (unbiased) of all its candidates' qualities and its centre lies inside the gt (more than
    0.01 px from every side). A prior positive for several gts takes the one of highest
    quality; equal qualities go to the lowest gt index (MMDetection's rules).

    Quality is the IoU of the prior box with the gt, or, with ``alpha`` set (DDOD's dynamic
    variant), ``sigmoid(score[label])^(1−α) · IoU(predicted box, gt)^α`` from the predictions.

    Args:
        topk (int): Candidates per level and gt.
        alpha (float | None): Exponent of the dynamic quality; None uses the prior IoU.
        iou_calculator (dict): Only MMDetection's ``dict(type='BboxOverlaps2D')``.
        ignore_iof_thr (float): Only ``-1`` (ignored boxes are not used).
    """

    def __init__(self, topk: int = 9, alpha: float | None = None,
                 iou_calculator: dict | None = None, ignore_iof_thr: float = -1) -> None:
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f'ATSSAssigner: topk must be a positive int, got {topk!r}')
        if alpha is not None and not 0 <= alpha <= 1:
            raise ValueError(f'ATSSAssigner: alpha must be in [0, 1] or None, got {alpha!r}')
        if iou_calculator is not None and iou_calculator.get('type') != 'BboxOverlaps2D':
            raise ValueError("ATSSAssigner: iou_calculator must be dict(type='BboxOverlaps2D'), "
                             f'got {iou_calculator!r}')
        if ignore_iof_thr > 0:
            raise ValueError(f'ATSSAssigner: ignore_iof_thr > 0 is not supported, got '
                             f'{ignore_iof_thr}')
        self.topk = topk
        self.alpha = alpha

    @torch.no_grad()
    def assign(self, priors: list[Tensor], gt_bboxes: Tensor, gt_labels: Tensor,
               gt_valid: Tensor, num_classes: int, prior_valid: Tensor | None = None,
               pred_scores: Tensor | None = None,
               pred_bboxes: Tensor | None = None) -> DenseAssignResult:
        """Assign the priors of every image.

        Args:
            priors (list[Tensor]): Per level ``[R_l, 4]`` prior boxes (anchors).
            gt_bboxes (Tensor): ``[N, M, 4]`` gt boxes, as from ``pad_gt_instances``.
            gt_labels (Tensor): ``[N, M]`` long labels in ``[0, C)``.
            gt_valid (Tensor): ``[N, M]`` bool, False for padding rows.
            num_classes (int): C, also the background label.
            prior_valid (Tensor | None): ``[N, R]`` bool; False priors (off the image's own
                padded area) are neither candidates nor positives. None: all valid.
            pred_scores (Tensor | None): ``[N, R, C]`` class logits (needed with ``alpha``).
            pred_bboxes (Tensor | None): ``[N, R, 4]`` decoded boxes (needed with ``alpha``).

        Returns:
            DenseAssignResult: ``gt_inds``, ``labels``, ``bbox_targets`` (gt boxes) and
            ``max_overlaps`` (quality of the assigned gt), each ``[N, R, ...]``.
        """
        flat_priors = torch.cat(priors)
        num_images, num_gts = gt_bboxes.shape[:2]
        overlaps = self._quality(flat_priors, gt_bboxes, gt_labels, pred_scores, pred_bboxes)
        if num_gts == 0:
            return gather_assignment(overlaps.new_zeros((num_images, flat_priors.shape[0], 0),
                                                        dtype=torch.bool),
                                     overlaps, gt_bboxes, gt_labels, num_classes)
        prior_ctr = (flat_priors[:, :2] + flat_priors[:, 2:4]) / 2.0  # [R, 2]
        gt_ctr = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2.0  # [N, M, 2]
        distances = (prior_ctr[None, :, None, :] - gt_ctr[:, None, :, :]).pow(2).sum(-1).sqrt()
        if prior_valid is not None:
            distances = distances.masked_fill(~prior_valid[..., None], INF)
        cand_idx = self._candidates(distances, [len(p) for p in priors])  # [N, T, M]
        cand_overlaps = overlaps.gather(1, cand_idx)
        cand_valid = (None if prior_valid is None else
                      prior_valid[..., None].expand_as(overlaps).gather(1, cand_idx))
        threshold = _mean_plus_std(cand_overlaps, cand_valid)  # [N, M]
        is_pos = cand_overlaps >= threshold[:, None, :]
        if cand_valid is not None:
            is_pos &= cand_valid
        is_pos &= centres_inside(prior_ctr[:, 0][cand_idx], prior_ctr[:, 1][cand_idx],
                                 gt_bboxes) & gt_valid[:, None, :]
        positive = torch.zeros_like(overlaps, dtype=torch.bool).scatter_(1, cand_idx, is_pos)
        return gather_assignment(positive, overlaps, gt_bboxes, gt_labels, num_classes)

    def _quality(self, flat_priors: Tensor, gt_bboxes: Tensor, gt_labels: Tensor,
                 pred_scores: Tensor | None, pred_bboxes: Tensor | None) -> Tensor:
        """``[N, R, M]`` matching quality (prior IoU, or the dynamic cost with ``alpha``)."""
        if self.alpha is None:
            return bbox_overlaps(flat_priors[None, :, :4], gt_bboxes)
        if pred_scores is None or pred_bboxes is None:
            raise ValueError('ATSSAssigner: alpha is set, so assign() needs pred_scores and '
                             'pred_bboxes')
        labels = gt_labels[:, None, :].expand(-1, pred_scores.shape[1], -1)
        cls_cost = pred_scores.sigmoid().gather(2, labels)  # [N, R, M]
        ious = bbox_overlaps(pred_bboxes, gt_bboxes)
        return cls_cost ** (1 - self.alpha) * ious ** self.alpha

    def _candidates(self, distances: Tensor, level_sizes: list[int]) -> Tensor:
        """Long ``[N, T, M]`` indices of the ``min(topk, R_l)`` nearest priors of each level."""
        cand_idx, start = [], 0
        for size in level_sizes:
            k = min(self.topk, size)
            level_idx = distances[:, start:start + size].topk(k, dim=1, largest=False).indices
            cand_idx.append(level_idx + start)
            start += size
        return torch.cat(cand_idx, dim=1)


def _mean_plus_std(values: Tensor, valid: Tensor | None) -> Tensor:
    """``[N, M]`` mean + unbiased std over dim 1 of ``[N, T, M]``, counting only ``valid``."""
    if valid is None or bool(valid.all()):
        return values.mean(1) + values.std(1)
    count = valid.sum(1)
    mean = (values * valid).sum(1) / count
    var = ((values - mean[:, None]).pow(2) * valid).sum(1) / (count - 1)
    return mean + var.sqrt()


def centres_inside(cand_ctr_x: Tensor, cand_ctr_y: Tensor, gt_bboxes: Tensor) -> Tensor:
    """Bool ``[N, T, M]``: candidate centre (``cand_ctr_x``, ``cand_ctr_y``, each broadcastable
    to ``[N, T, M]``) lies more than ``INSIDE_EPS`` inside gt box m of image n
    (``gt_bboxes [N, M, 4]``) on every side."""
    return torch.stack([cand_ctr_x - gt_bboxes[:, None, :, 0],
                        cand_ctr_y - gt_bboxes[:, None, :, 1],
                        gt_bboxes[:, None, :, 2] - cand_ctr_x,
                        gt_bboxes[:, None, :, 3] - cand_ctr_y]).amin(dim=0) > INSIDE_EPS


def gather_assignment(positive: Tensor, overlaps: Tensor, gt_bboxes: Tensor, gt_labels: Tensor,
                      num_classes: int) -> DenseAssignResult:
    """Resolve ``[N, R, M]`` positives to one gt per prior (highest ``overlaps [N, R, M]``,
    then lowest gt index) and gather its label ``[N, R]`` and box ``[N, R, 4]``."""
    num_images, num_priors = positive.shape[:2]
    if positive.shape[2] == 0:
        return DenseAssignResult(
            gt_labels.new_full((num_images, num_priors), -1),
            gt_labels.new_full((num_images, num_priors), num_classes),
            gt_bboxes.new_zeros((num_images, num_priors, 4)),
            overlaps.new_zeros((num_images, num_priors)))
    masked = torch.where(positive, overlaps, overlaps.new_full((), -INF))
    max_overlaps, argmax = masked.max(dim=2)  # first maximum: lowest gt index on ties
    is_pos = positive.any(dim=2)
    gt_inds = torch.where(is_pos, argmax, -1)
    labels = torch.where(is_pos, gt_labels.gather(1, argmax), num_classes)
    boxes = gt_bboxes.gather(1, argmax[..., None].expand(-1, -1, 4))
    return DenseAssignResult(gt_inds, labels, torch.where(is_pos[..., None], boxes, 0.0),
                             torch.where(is_pos, max_overlaps, 0.0))
