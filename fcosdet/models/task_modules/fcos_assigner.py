"""FCOS target assignment, batched over all images of a batch.

Shape letters: ``N`` images, ``L`` levels, ``R_l`` points of level l, ``R`` points of all levels,
``M`` gt boxes per image (padded), ``C`` classes (background is label ``C``).
"""
from collections.abc import Sequence

import torch
from torch import Tensor

from fcosdet.registry import TASK_UTILS


def centerness_target(bbox_targets: Tensor) -> Tensor:
    """Centre-ness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``.

    Args:
        bbox_targets: ``[..., 4]`` distances ``(l, t, r, b)`` of positive points (all > 0).

    Returns:
        ``[...]`` centre-ness in [0, 1]; an all-zero row (a background point) gives 0.
    """
    left_right = bbox_targets[..., 0::2]
    top_bottom = bbox_targets[..., 1::2]
    # The tiny floor on the denominators keeps all-zero rows at 0 instead of NaN.
    tiny = torch.finfo(bbox_targets.dtype).tiny
    ratio_x = left_right.min(dim=-1).values / left_right.max(dim=-1).values.clamp(min=tiny)
    ratio_y = top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values.clamp(min=tiny)
    return torch.sqrt(ratio_x * ratio_y)


@TASK_UTILS.register_module()
class FCOSAssigner:
    """Assign every point of every level to at most one gt box, FCOS style.

    A point is a candidate for a box when it lies strictly inside the box (or, with centre
    sampling, strictly inside the box's centre region ``centre ± stride * radius`` clipped to
    the box) and the largest of its distances ``(l, t, r, b)`` to the box lies in its level's
    regress range, both ends inclusive. Among several candidate boxes the one of smallest area
    wins (ties: lowest box index). Boxes are absolute-pixel ``(x1, y1, x2, y2)``; labels are in
    ``[0, C)`` and unmatched points get the background label ``C``.

    Args:
        strides: Stride of each level.
        regress_ranges: ``(lower, upper)`` bound on ``max(l, t, r, b)`` of each level.
        center_sampling: Only points near the box centre become positives.
        center_sample_radius: Half-size of the centre region, in strides.
        norm_on_bbox: Divide the regression targets by the level stride.
    """

    def __init__(self, strides: Sequence[int] = (8, 16, 32, 64, 128),
                 regress_ranges: Sequence[tuple[float, float]] = (
                     (-1, 64), (64, 128), (128, 256), (256, 512), (512, 1e8)),
                 center_sampling: bool = False, center_sample_radius: float = 1.5,
                 norm_on_bbox: bool = False) -> None:
        if len(strides) != len(regress_ranges):
            raise ValueError(f'FCOSAssigner: {len(strides)} strides but {len(regress_ranges)} '
                             'regress_ranges; need one range per level')
        if any(s <= 0 for s in strides):
            raise ValueError(f'FCOSAssigner: strides must be positive, got {tuple(strides)}')
        for bounds in regress_ranges:
            if len(bounds) != 2 or bounds[0] > bounds[1]:
                raise ValueError(f'FCOSAssigner: a regress range must be (lower, upper) with '
                                 f'lower <= upper, got {bounds!r}')
        if center_sample_radius <= 0:
            raise ValueError('FCOSAssigner: center_sample_radius must be positive, got '
                             f'{center_sample_radius}')
        self.strides = tuple(strides)
        self.regress_ranges = tuple(tuple(bounds) for bounds in regress_ranges)
        self.center_sampling = center_sampling
        self.center_sample_radius = center_sample_radius
        self.norm_on_bbox = norm_on_bbox

    @torch.no_grad()
    def assign(self, points: list[Tensor], gt_bboxes: Tensor, gt_labels: Tensor,
               gt_valid: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """Classification and regression targets of all points of all images.

        Args:
            points: Per level ``[R_l, 2]`` points ``(x, y)``.
            gt_bboxes: ``[N, M, 4]`` gt boxes, as from ``pad_gt_instances``.
            gt_labels: ``[N, M]`` long labels in ``[0, C)``.
            gt_valid: ``[N, M]`` bool, False for padding rows.
            num_classes: C, which is also the background label.

        Returns:
            ``labels`` long ``[N, R]`` (levels concatenated in order; background = C) and
            ``bbox_targets`` float ``[N, R, 4]``: ``(l, t, r, b)`` of the matched box (divided by
            the stride with ``norm_on_bbox``), zeros for background points.
        """
        self._check_inputs(points, gt_bboxes, gt_labels, gt_valid)
        flat_points, point_strides, lower, upper = self._flatten_levels(points)
        num_images, num_points = gt_bboxes.shape[0], flat_points.shape[0]
        labels = gt_labels.new_full((num_images, num_points), num_classes)
        bbox_targets = flat_points.new_zeros((num_images, num_points, 4))
        if gt_bboxes.shape[1] == 0:
            return labels, bbox_targets

        candidate = self._candidates(flat_points, point_strides, lower, upper, gt_bboxes)
        candidate &= gt_valid[:, None, :]
        areas = (gt_bboxes[..., 2] - gt_bboxes[..., 0]) * (gt_bboxes[..., 3] - gt_bboxes[..., 1])
        masked_areas = torch.where(candidate, areas[:, None, :], torch.inf)  # [N, R, M]
        matched = masked_areas.argmin(dim=2)  # the first minimum: ties go to the lowest index
        positive = candidate.any(dim=2)  # [N, R]

        labels = torch.where(positive, gt_labels.gather(1, matched), labels)
        matched_boxes = gt_bboxes.gather(1, matched[..., None].expand(-1, -1, 4))  # [N, R, 4]
        targets = torch.cat([flat_points - matched_boxes[..., :2],
                             matched_boxes[..., 2:] - flat_points], dim=-1)
        if self.norm_on_bbox:
            targets = targets / point_strides[:, None]
        bbox_targets = torch.where(positive[..., None], targets, bbox_targets)
        return labels, bbox_targets

    def _check_inputs(self, points: list[Tensor], gt_bboxes: Tensor, gt_labels: Tensor,
                      gt_valid: Tensor) -> None:
        """Raise a ValueError naming the argument whose shape is wrong."""
        if len(points) != len(self.strides):
            raise ValueError(f'FCOSAssigner.assign: got points of {len(points)} levels for '
                             f'{len(self.strides)} strides')
        if gt_bboxes.dim() != 3 or gt_bboxes.shape[2] != 4:
            raise ValueError(f'FCOSAssigner.assign: gt_bboxes must be [N, M, 4], got '
                             f'{tuple(gt_bboxes.shape)}')
        if gt_labels.shape != gt_bboxes.shape[:2] or gt_valid.shape != gt_bboxes.shape[:2]:
            raise ValueError(f'FCOSAssigner.assign: gt_labels {tuple(gt_labels.shape)} and '
                             f'gt_valid {tuple(gt_valid.shape)} must be [N, M] = '
                             f'{tuple(gt_bboxes.shape[:2])}')

    def _flatten_levels(self, points: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Concatenate the levels' points with each point's stride and regress range.

        Returns:
            ``points [R, 2]``, ``strides [R]``, ``lower [R]`` and ``upper [R]``.
        """
        sizes = [len(level_points) for level_points in points]
        flat_points = torch.cat([level_points[:, :2] for level_points in points])

        def per_point(values: list[float]) -> Tensor:
            level_values = flat_points.new_tensor(values)
            return level_values.repeat_interleave(torch.tensor(sizes, device=flat_points.device))

        return (flat_points, per_point(list(self.strides)),
                per_point([lo for lo, _ in self.regress_ranges]),
                per_point([hi for _, hi in self.regress_ranges]))

    def _candidates(self, points: Tensor, point_strides: Tensor, lower: Tensor, upper: Tensor,
                    gt_bboxes: Tensor) -> Tensor:
        """Bool ``[N, R, M]``: point r may regress box m (inside test and regress range).

        Args:
            points: ``[R, 2]``; point_strides, lower, upper: ``[R]``; gt_bboxes: ``[N, M, 4]``.
        """
        xs, ys = points[None, :, 0, None], points[None, :, 1, None]  # [1, R, 1]
        x1, y1, x2, y2 = (gt_bboxes[:, None, :, k] for k in range(4))  # [N, 1, M]
        left, top, right, bottom = xs - x1, ys - y1, x2 - xs, y2 - ys  # [N, R, M]
        max_dist = torch.maximum(torch.maximum(left, right), torch.maximum(top, bottom))
        in_range = (max_dist >= lower[None, :, None]) & (max_dist <= upper[None, :, None])
        del max_dist
        if not self.center_sampling:
            min_dist = torch.minimum(torch.minimum(left, right), torch.minimum(top, bottom))
            return in_range & (min_dist > 0)
        del left, top, right, bottom
        radius = (point_strides * self.center_sample_radius)[None, :, None]  # [1, R, 1]
        center_x, center_y = (x1 + x2) / 2, (y1 + y2) / 2
        # Centre region clipped to the box, then the same strict inside test.
        left = xs - torch.maximum(center_x - radius, x1)
        top = ys - torch.maximum(center_y - radius, y1)
        right = torch.minimum(center_x + radius, x2) - xs
        bottom = torch.minimum(center_y + radius, y2) - ys
        min_dist = torch.minimum(torch.minimum(left, right), torch.minimum(top, bottom))
        return in_range & (min_dist > 0)
