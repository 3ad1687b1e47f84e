"""GFL head (Li et al., NeurIPS 2020): ATSS assignment, a joint class-quality score trained with
quality focal loss, and each box side as a distribution over 0..reg_max strides trained with
distribution focal loss; boxes are decoded by the distribution's expectation (the integral).

Shape letters: N images, L levels, R anchors (all levels), R_l anchors of level l, P positive
anchors of the batch, C classes (background is label C), B = reg_max + 1 bins, K candidates,
H_l/W_l map size.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.models.dense_heads.anchor_targets import (
    anchor_center,
    anchor_settings,
    anchor_targets,
    anchor_towers,
    build_loss,
    prediction_conv,
)
from fcosdet.models.dense_heads.atss_head import FAMILY_ANCHORS, GN
from fcosdet.models.dense_heads.base_dense_head import BaseDenseHead
from fcosdet.models.dense_heads.dense_postprocess import PredictionMaps, dense_predict
from fcosdet.models.dense_heads.dense_utils import (
    build_scales,
    check_levels,
    flatten_levels,
    grid_priors_like,
    head_init_cfg,
    reduce_mean,
)
from fcosdet.registry import MODELS
from fcosdet.structures.bbox import bbox_overlaps


class Integral(nn.Module):
    """Expected distance ``sum_i i · softmax(x)_i`` of each side's distribution.

    Args:
        reg_max (int): Largest distance (in strides); B = reg_max + 1 bins 0..reg_max.
    """

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max = reg_max
        # A buffer in MMDetection's state dict too (``integral.project``).
        self.register_buffer('project', torch.linspace(0, reg_max, reg_max + 1))

    def forward(self, x: Tensor) -> Tensor:
        """``[..., 4 * B]`` logits → ``[..., 4]`` distances (l, t, r, b) in strides."""
        probs = F.softmax(x.reshape(*x.shape[:-1], 4, self.reg_max + 1), dim=-1)
        return F.linear(probs, self.project.type_as(probs)).reshape(*x.shape[:-1], 4)


@MODELS.register_module()
class GFLHead(BaseDenseHead):
    """GFL head with MMDetection's arguments, parameter names and outputs.

    Boxes are absolute-pixel x1y1x2y2; labels lie in [0, C) and ``num_classes`` excludes
    background. Training needs ``train_cfg`` with an ``assigner`` (ATSSAssigner in
    MMDetection's configs).

    Args:
        num_classes (int): C.
        in_channels (int): Channels of every input map.
        stacked_convs (int): Convs per tower.
        feat_channels (int): Channels of the tower convs.
        conv_cfg (dict | None): Conv config of the towers.
        norm_cfg (dict | None): Norm of the towers (GN 32 by default).
        reg_max (int): Largest distance in strides; the regression conv has 4·(reg_max+1)
            channels.
        anchor_generator, bbox_coder (dict): TASK_UTILS configs (the coder turns anchor
            centres and distances into boxes: ``DistancePointBBoxCoder``).
        loss_cls, loss_bbox, loss_dfl (dict): MODELS configs (QFL, GIoU, DFL).
        train_cfg (dict | None): ``assigner``, ``allowed_border``, ``pos_weight``, ``debug``.
        test_cfg (dict | None): ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``,
            ``min_bbox_size``.
        init_cfg (dict | list[dict] | None): Default N(0, 0.01), ``gfl_cls`` bias prior 0.01.
    """

    def __init__(self, num_classes: int, in_channels: int, stacked_convs: int = 4,
                 feat_channels: int = 256, conv_cfg: dict | None = None,
                 norm_cfg: dict | None = GN, reg_max: int = 16,
                 anchor_generator: dict = FAMILY_ANCHORS,
                 bbox_coder: dict = dict(type='DistancePointBBoxCoder'),
                 loss_cls: dict = dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0,
                                       loss_weight=1.0),
                 loss_bbox: dict = dict(type='GIoULoss', loss_weight=2.0),
                 loss_dfl: dict = dict(type='DistributionFocalLoss', loss_weight=0.25),
                 train_cfg: dict | None = None, test_cfg: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=head_init_cfg('gfl_cls') if init_cfg is None else init_cfg)
        if not isinstance(reg_max, int) or reg_max < 1:
            raise ValueError(f'GFLHead reg_max must be a positive int, got {reg_max!r}')
        self.reg_max = reg_max
        settings = anchor_settings('GFLHead', num_classes, anchor_generator, bbox_coder,
                                   train_cfg, test_cfg)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.train_cfg = settings.train_cfg
        self.assigner = settings.assigners['assigner']
        self.test_cfg = settings.test_cfg
        self.prior_generator = settings.prior_generator
        self.bbox_coder = settings.bbox_coder
        self.loss_cls = build_loss(loss_cls)
        self.loss_bbox = build_loss(loss_bbox)
        self.loss_dfl = build_loss(loss_dfl)
        # MMDetection's module names and state-dict order: towers, output convs, scales
        self.cls_convs, self.reg_convs = anchor_towers(in_channels, feat_channels,
                                                       stacked_convs, conv_cfg, norm_cfg)
        num_anchors = self.prior_generator.num_base_priors[0]
        conv_args = (in_channels, feat_channels, stacked_convs)
        self.gfl_cls = prediction_conv(*conv_args, num_anchors * num_classes)
        self.gfl_reg = prediction_conv(*conv_args, num_anchors * 4 * (reg_max + 1))
        self.scales = build_scales(self.prior_generator.num_levels)
        self.integral = Integral(reg_max)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: joint class-quality logits ``[N, C, H_l, W_l]`` and distribution logits
        ``[N, 4·(reg_max+1), H_l, W_l]`` (scaled per level), from L maps
        ``[N, in_channels, H_l, W_l]``."""
        cls_scores, bbox_preds = [], []
        check_levels(x, len(self.scales), 'GFLHead')
        for feat, scale in zip(x, self.scales):
            cls_scores.append(self.gfl_cls(self.cls_convs(feat)))
            bbox_preds.append(scale(self.gfl_reg(self.reg_convs(feat))).float())
        return cls_scores, bbox_preds

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     batch_gt_instances: list[InstanceData], batch_img_metas: list[dict],
                     batch_gt_instances_ignore: list[InstanceData] | None = None
                     ) -> dict[str, Tensor]:
        """QFL, GIoU and DFL losses over all anchors of the batch (in stride units).

        The QFL target of a positive is the IoU of its decoded box with its gt; GIoU and DFL
        terms are weighted by the positive's highest class probability and normalised by the
        sum of those weights. Per-level terms are summed (MMDetection returns them per level).

        Args:
            cls_scores, bbox_preds (list[Tensor]): As from :meth:`forward`.
            batch_gt_instances (list[InstanceData]): N gt sets (``bboxes``, ``labels``).
            batch_img_metas (list[dict]): N metas with ``pad_shape``.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_dfl``.
        """
        targets = anchor_targets(self, cls_scores, batch_gt_instances, batch_img_metas)
        labels, pos_mask = targets.assign.labels, targets.assign.pos_mask  # [N, R]
        flat_cls = flatten_levels(cls_scores)  # [N, R, C]
        flat_reg = flatten_levels(bbox_preds)  # [N, R, 4B]
        pos_reg = flat_reg[pos_mask]  # [P, 4B]
        pos_strides = targets.strides.expand_as(labels)[pos_mask][:, None]  # [P, 1]
        pos_centers = anchor_center(targets.flat_anchors.expand(*labels.shape, 4)[pos_mask])
        pos_centers = pos_centers / pos_strides
        pos_gt = targets.assign.bbox_targets[pos_mask] / pos_strides
        weight = flat_cls.detach().sigmoid().amax(dim=2)[pos_mask]  # [P]
        pos_decoded = self.bbox_coder.decode(pos_centers, self.integral(pos_reg))
        quality = torch.zeros_like(labels, dtype=flat_cls.dtype)
        quality[pos_mask] = bbox_overlaps(pos_decoded.detach(), pos_gt, is_aligned=True)
        loss_cls = self.loss_cls(flat_cls.reshape(-1, self.num_classes),
                                 (labels.reshape(-1), quality.reshape(-1)),
                                 weight=targets.label_weights.reshape(-1),
                                 avg_factor=targets.avg_factor)
        # Every rank joins the all-reduce, also with no positives.
        avg_factor = float(reduce_mean(weight.sum()).clamp(min=1))
        if pos_reg.shape[0] == 0:
            # Exact zeros that keep every prediction in the graph (DDP needs used params).
            zero = flat_reg.sum() * 0
            return dict(loss_cls=loss_cls, loss_bbox=zero, loss_dfl=zero.clone())
        loss_bbox = self.loss_bbox(pos_decoded, pos_gt, weight=weight, avg_factor=1.0)
        dfl_targets = self.bbox_coder.encode(pos_centers, pos_gt, self.reg_max)  # [P, 4]
        loss_dfl = self.loss_dfl(pos_reg.reshape(-1, self.reg_max + 1), dfl_targets.reshape(-1),
                                 weight=weight[:, None].expand(-1, 4).reshape(-1),
                                 avg_factor=4.0)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox / avg_factor,
                    loss_dfl=loss_dfl / avg_factor)

    def predict_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        batch_img_metas: list[dict], cfg: dict | None = None,
                        rescale: bool = False) -> list[InstanceData]:
        """Detections scored by the class-quality probability, boxes from the integral of
        each side's distribution, batched over images. The maps are :meth:`forward`'s; the
        other arguments and the result (N ``InstanceData`` with ``bboxes [K, 4]``,
        ``scores [K]``, ``labels [K]``) are :func:`dense_predict`'s."""
        return dense_predict(self, self.prediction_maps(cls_scores, bbox_preds),
                             batch_img_metas, cfg, rescale)

    def prediction_maps(self, cls_scores: list[Tensor],
                        bbox_preds: list[Tensor]) -> PredictionMaps:
        """Class-quality probabilities and, by name, the distribution logits, anchors and
        anchor strides :meth:`decode_candidates` reads (maps as from :meth:`forward`)."""
        anchors = grid_priors_like(self.prior_generator, bbox_preds)
        # [R_l, 1] filled from the anchors, so an exported graph follows the map size
        strides = [torch.full_like(level[:, :1], stride[0])
                   for level, stride in zip(anchors, self.prior_generator.strides)]
        return PredictionMaps([s.sigmoid() for s in cls_scores],
                              dict(reg=bbox_preds, anchors=anchors, strides=strides))

    def decode_candidates(self, cls_prob: Tensor, picked: dict[str, Tensor], img_shapes: Tensor,
                          cfg: dict) -> tuple[Tensor, Tensor]:
        """Candidate boxes ``[N, K, 4]`` clipped to ``img_shapes [N, 2]``: the integral of each
        side's distribution × stride around the anchor centre, from the picked ``reg`` logits
        ``[N, K, 4B]``, ``anchors [N, K, 4]`` and ``strides [N, K, 1]``; scores are
        ``cls_prob [N, K]`` itself."""
        boxes = self.bbox_coder.decode(anchor_center(picked['anchors']),
                                       self.integral(picked['reg']) * picked['strides'],
                                       max_shape=img_shapes)
        return boxes, cls_prob
