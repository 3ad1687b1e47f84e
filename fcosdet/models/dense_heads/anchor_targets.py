"""Training targets of the anchor-based family heads (ATSS, GFL, ...), batched over images:
anchors, their valid flags, the assigner's result, classification weights and the
normaliser, as MMDetection's ``AnchorHead.get_targets`` with ``PseudoSampler``.

Shape letters: N images, L levels, R_l anchors of level l, R anchors of all levels, M gt boxes
(padded), C classes (background is label C).
"""
import copy
from typing import NamedTuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.models.dense_heads.dense_utils import metas_tensor, reduce_mean
from fcosdet.models.task_modules.assign_result import DenseAssignResult
from fcosdet.models.task_modules.pad_gt import pad_gt_instances
from fcosdet.registry import TASK_UTILS

# MMDetection's train_cfg keys of these heads besides the assigner(s), with the values its
# configs use; ``debug`` is accepted and ignored.
TRAIN_CFG_DEFAULTS = dict(allowed_border=-1, pos_weight=-1, debug=False)


class AnchorTargets(NamedTuple):
    """What :func:`anchor_targets` returns.

    Attributes:
        anchors (list[Tensor]): Per level ``[R_l, 4]`` anchors (shared by the images).
        flat_anchors (Tensor): ``[R, 4]`` all anchors, levels concatenated.
        strides (Tensor): ``[R]`` stride (``s_w``) of each anchor's level.
        assign (DenseAssignResult): ``[N, R, ...]`` assignment (``bbox_targets`` = gt boxes).
        label_weights (Tensor): ``[N, R]`` classification weights: 0 off the image's area,
            ``pos_weight`` (or 1) for positives, 1 for negatives.
        avg_factor (float): Sum over images of ``max(num_pos, 1)``, averaged over ranks.
    """

    anchors: list[Tensor]
    flat_anchors: Tensor
    strides: Tensor
    assign: DenseAssignResult
    label_weights: Tensor
    avg_factor: float


def build_train_cfg(train_cfg: dict | None, owner: str,
                    assigner_keys: tuple[str, ...] = ('assigner',)) -> tuple[dict, dict]:
    """Check a head's ``train_cfg`` and build its assigner(s).

    Args:
        train_cfg (dict | None): MMDetection's ``model.train_cfg`` (None at test time).
        owner (str): Head name used in error messages.
        assigner_keys (tuple[str, ...]): Keys holding TASK_UTILS assigner configs.

    Returns:
        tuple[dict, dict]: the settings (``allowed_border``, ``pos_weight``, ``debug`` and
        any other key, copied) and the built assigners by key (empty when ``train_cfg`` is
        None).
    """
    if train_cfg is None:
        return dict(TRAIN_CFG_DEFAULTS), {}
    cfg = dict(TRAIN_CFG_DEFAULTS, **copy.deepcopy(train_cfg))
    missing = [key for key in assigner_keys if not isinstance(cfg.get(key), dict)]
    if missing:
        raise KeyError(f'{owner} train_cfg: {missing} must be assigner config dicts, got '
                       f'{train_cfg!r}')
    assigners = {key: TASK_UTILS.build(cfg.pop(key)) for key in assigner_keys}
    return cfg, assigners


def anchor_center(anchors: Tensor) -> Tensor:
    """Centres ``[..., 2]`` of ``[..., 4]`` anchors."""
    return (anchors[..., :2] + anchors[..., 2:]) / 2


def level_strides(prior_generator: object, anchors: list[Tensor]) -> Tensor:
    """``[R]`` the (horizontal) stride of every anchor's level."""
    return torch.cat([level.new_full((len(level),), stride[0])
                      for level, stride in zip(anchors, prior_generator.strides)])


def inside_flags(prior_generator: object, featmap_sizes: list[tuple[int, int]],
                 flat_anchors: Tensor, batch_img_metas: list[dict], allowed_border: int,
                 owner: str) -> Tensor:
    """Bool ``[N, R]``: anchors on each image's padded area and, with ``allowed_border >= 0``,
    within ``allowed_border`` pixels of its ``img_shape`` (MMDetection's
    ``anchor_inside_flags``)."""
    pad_shapes = metas_tensor(batch_img_metas, 'pad_shape', flat_anchors, owner)[:, :2]
    flags = prior_generator.valid_flags(featmap_sizes, pad_shapes, flat_anchors.device)
    if allowed_border < 0:
        return flags
    img_shapes = metas_tensor(batch_img_metas, 'img_shape', flat_anchors, owner)[:, :2]
    height, width = img_shapes[:, None, 0], img_shapes[:, None, 1]  # [N, 1]
    x1, y1, x2, y2 = flat_anchors.unbind(dim=1)  # [R] each
    return (flags & (x1 >= -allowed_border) & (y1 >= -allowed_border)
            & (x2 < width + allowed_border) & (y2 < height + allowed_border))


def anchor_targets(prior_generator: object, assigner: object, featmap_sizes: list[tuple[int, int]],
                   batch_gt_instances: list[InstanceData], batch_img_metas: list[dict],
                   num_classes: int, train_cfg: dict, like: Tensor, owner: str,
                   **assign_kwargs: Tensor) -> AnchorTargets:
    """Anchors, assignment and classification weights of a batch.

    Args:
        prior_generator (AnchorGenerator): Builds the anchors.
        assigner (ATSSAssigner): Any assigner with the ``ATSSAssigner.assign`` signature.
        featmap_sizes (list[tuple[int, int]]): ``(H_l, W_l)`` per level.
        batch_gt_instances (list[InstanceData]): N gt sets (``bboxes``, ``labels``).
        batch_img_metas (list[dict]): N metas with ``pad_shape`` (and ``img_shape`` when
            ``allowed_border >= 0``).
        num_classes (int): C.
        train_cfg (dict): Settings from :func:`build_train_cfg`.
        like (Tensor): Anchors take its dtype and device.
        owner (str): Head name used in error messages.
        **assign_kwargs: Passed to ``assign`` (``pred_scores``/``pred_bboxes`` for DDOD).

    Returns:
        AnchorTargets: see its attributes.
    """
    anchors = prior_generator.grid_priors(featmap_sizes, dtype=like.dtype, device=like.device)
    flat_anchors = torch.cat(anchors)
    valid = inside_flags(prior_generator, featmap_sizes, flat_anchors, batch_img_metas,
                         train_cfg['allowed_border'], owner)
    gt_bboxes, gt_labels, gt_valid = pad_gt_instances(batch_gt_instances, like=like)
    assign = assigner.assign(anchors, gt_bboxes, gt_labels, gt_valid, num_classes,
                             prior_valid=valid, **assign_kwargs)
    pos_mask = assign.pos_mask & valid
    pos_weight = train_cfg['pos_weight']
    label_weights = valid.to(like.dtype)
    if pos_weight > 0:
        label_weights = torch.where(pos_mask, float(pos_weight), label_weights)
    # MMDetection's SamplingResult counts max(num_pos, 1) per image.
    num_pos = pos_mask.sum(dim=1).clamp(min=1).sum().to(like.dtype)
    return AnchorTargets(anchors, flat_anchors, level_strides(prior_generator, anchors), assign,
                         label_weights, float(reduce_mean(num_pos)))
