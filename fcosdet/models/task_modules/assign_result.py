"""The batched assignment every prior-based assigner returns.

Shape letters: ``N`` images, ``R`` priors (all levels, concatenated in order), ``M`` gt boxes
per image (padded), ``C`` classes (background is label ``C``).
"""
from typing import NamedTuple

from torch import Tensor


class DenseAssignResult(NamedTuple):
    """Which gt box (if any) each prior of each image is assigned to.

    Attributes:
        gt_inds (Tensor): Long ``[N, R]``: index of the assigned box in the padded gt of its
            image (``0 .. M-1``), ``-1`` for background. (MMDetection's ``AssignResult`` uses
            ``i + 1`` and 0; here the index is 0-based so it can ``gather`` directly.)
        labels (Tensor): Long ``[N, R]``: class of the assigned box, ``C`` for background.
        bbox_targets (Tensor): ``[N, R, 4]``: the assigned gt box ``(x1, y1, x2, y2)``, zeros
            for background.
        max_overlaps (Tensor): ``[N, R]``: matching quality of the assigned box (IoU, or the
            assigner's cost such as ``score^(1-α)·IoU^α``), 0 for background.
        assign_metrics (Tensor | None): ``[N, R]``: the task-alignment metric
            ``s^α·u^β`` of the assigned box (``TaskAlignedAssigner``; 0 for background), None
            for the other assigners (MMDetection sets it as an extra attribute).
    """

    gt_inds: Tensor
    labels: Tensor
    bbox_targets: Tensor
    max_overlaps: Tensor
    assign_metrics: Tensor | None = None

    @property
    def pos_mask(self) -> Tensor:
        """Bool ``[N, R]``: the prior is assigned to a gt box."""
        return self.gt_inds >= 0
