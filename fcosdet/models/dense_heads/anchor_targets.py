"""What the anchor-based family heads (ATSS, GFL, ...) share: the parts of their construction
(towers, output convs, anchors, coder, assigners from ``train_cfg``; each head assigns them to
its attributes itself) and their training targets batched over
images (anchors, valid flags, the assigner's result, classification weights and the
normaliser, as MMDetection's ``AnchorHead.get_targets`` with ``PseudoSampler``).

Shape letters: N images, L levels, R_l anchors of level l, R anchors of all levels, M gt boxes
(padded), C classes (background is label C).
"""
import copy
from typing import NamedTuple

import torch
import torch.nn as nn
from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.models.dense_heads.dense_postprocess import DENSE_TEST_CFG, check_test_cfg
from fcosdet.models.dense_heads.dense_utils import (
    build_tower,
    metas_tensor,
    reduce_mean,
)
from fcosdet.models.task_modules.assign_result import DenseAssignResult
from fcosdet.models.task_modules.fcos_assigner import centerness_target
from fcosdet.models.task_modules.pad_gt import pad_gt_instances
from fcosdet.registry import MODELS, TASK_UTILS

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


class AnchorSettings(NamedTuple):
    """The parameter-free parts the anchor-based family heads share (see
    :func:`anchor_settings`); each head assigns them to its own attributes.

    Attributes:
        train_cfg (dict): Checked settings (``allowed_border``, ``pos_weight``, ``debug``, ...).
        assigners (dict[str, object | None]): The built assigner of each assigner key (None
            without a ``train_cfg``).
        test_cfg (dict): Checked against :data:`DENSE_TEST_CFG`.
        prior_generator (object): The anchor generator (TASK_UTILS).
        bbox_coder (object): The box coder (TASK_UTILS).
    """

    train_cfg: dict
    assigners: dict[str, object | None]
    test_cfg: dict
    prior_generator: object
    bbox_coder: object


def anchor_settings(owner: str, num_classes: int, anchor_generator: dict, bbox_coder: dict,
                    train_cfg: dict | None, test_cfg: dict | None,
                    assigner_keys: tuple[str, ...] = ('assigner',)) -> AnchorSettings:
    """Check and build what :class:`AnchorSettings` holds (configs are copied, never mutated).

    Raises:
        ValueError: ``num_classes`` is not a positive int (message names ``owner``).
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f'{owner} num_classes must be a positive int, got {num_classes!r}')
    checked_train_cfg, assigners = build_train_cfg(train_cfg, owner, assigner_keys)
    return AnchorSettings(
        checked_train_cfg, {key: assigners.get(key) for key in assigner_keys},
        check_test_cfg(test_cfg, DENSE_TEST_CFG, owner),
        TASK_UTILS.build(copy.deepcopy(anchor_generator)),
        TASK_UTILS.build(copy.deepcopy(bbox_coder)))


def build_loss(cfg: dict) -> nn.Module:
    """A MODELS loss from a copy of ``cfg``."""
    return MODELS.build(copy.deepcopy(cfg))


def anchor_towers(in_channels: int, feat_channels: int, stacked_convs: int,
                  conv_cfg: dict | None,
                  norm_cfg: dict | None) -> tuple[nn.Sequential, nn.Sequential]:
    """The classification and regression towers (``cls_convs``, ``reg_convs``) of the
    ATSS-style heads, see :func:`build_tower`."""
    return tuple(build_tower(in_channels, feat_channels, stacked_convs, norm_cfg=norm_cfg,
                             conv_cfg=conv_cfg) for _ in range(2))


def prediction_conv(in_channels: int, feat_channels: int, stacked_convs: int,
                    out_channels: int, kernel_size: int = 3) -> nn.Conv2d:
    """An output conv on a tower's result (``in_channels`` when the tower is empty)."""
    tower_channels = feat_channels if stacked_convs > 0 else in_channels
    return nn.Conv2d(tower_channels, out_channels, kernel_size, padding=kernel_size // 2)


def anchor_center(anchors: Tensor) -> Tensor:
    """Centres ``[..., 2]`` of ``[..., 4]`` anchors."""
    return (anchors[..., :2] + anchors[..., 2:]) / 2


def anchor_centerness(anchors: Tensor, gt_bboxes: Tensor) -> Tensor:
    """ATSS's centre-ness ``[P]`` of each anchor centre inside its gt box (``[P, 4]`` each)."""
    centers = anchor_center(anchors)
    return centerness_target(torch.cat([centers - gt_bboxes[:, :2], gt_bboxes[:, 2:] - centers],
                                       dim=1))


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


def anchor_targets(head: nn.Module, cls_scores: list[Tensor],
                   batch_gt_instances: list[InstanceData], batch_img_metas: list[dict],
                   assigner: object | None = None, **assign_kwargs: Tensor) -> AnchorTargets:
    """Anchors, assignment and classification weights of a batch.

    Args:
        head (nn.Module): A head built from :func:`anchor_settings` (uses its
            ``prior_generator``, ``assigner``, ``train_cfg`` and ``num_classes``).
        cls_scores (list[Tensor]): Per level ``[N, C, H_l, W_l]`` (sizes, dtype, device).
        batch_gt_instances (list[InstanceData]): N gt sets (``bboxes``, ``labels``).
        batch_img_metas (list[dict]): N metas with ``pad_shape`` (and ``img_shape`` when
            ``allowed_border >= 0``).
        assigner (object | None): Replaces ``head.assigner`` (e.g. DDOD's ``reg_assigner``);
            anything with the ``ATSSAssigner.assign`` signature.
        **assign_kwargs: Passed to ``assign`` (``pred_scores``/``pred_bboxes`` for DDOD).

    Returns:
        AnchorTargets: see its attributes.
    """
    owner = type(head).__name__
    assigner = head.assigner if assigner is None else assigner
    if assigner is None:
        raise ValueError(f'{owner}.loss_by_feat needs train_cfg with an assigner')
    featmap_sizes = [tuple(s.shape[-2:]) for s in cls_scores]
    # float32 anchors as MMDetection's, also when the scores come from mixed precision
    anchors = head.prior_generator.grid_priors(featmap_sizes, device=cls_scores[0].device)
    flat_anchors = torch.cat(anchors)
    valid = inside_flags(head.prior_generator, featmap_sizes, flat_anchors, batch_img_metas,
                         head.train_cfg['allowed_border'], owner)
    gt_bboxes, gt_labels, gt_valid = pad_gt_instances(batch_gt_instances, like=flat_anchors)
    assign = assigner.assign(anchors, gt_bboxes, gt_labels, gt_valid, head.num_classes,
                             prior_valid=valid, **assign_kwargs)
    pos_mask = assign.pos_mask & valid
    pos_weight = head.train_cfg['pos_weight']
    label_weights = valid.to(flat_anchors.dtype)
    if pos_weight > 0:
        label_weights = torch.where(pos_mask, float(pos_weight), label_weights)
    # MMDetection's SamplingResult counts max(num_pos, 1) per image.
    num_pos = pos_mask.sum(dim=1).clamp(min=1).sum().to(flat_anchors.dtype)
    return AnchorTargets(anchors, flat_anchors, level_strides(head.prior_generator, anchors),
                         assign, label_weights, float(reduce_mean(num_pos)))
