"""VarifocalNet head (Zhang et al., CVPR 2021): IoU-aware classification score from features
sampled at a star of points on the initial box, and a box refined from the same star.

Shape letters: N images, L levels, R points (all levels), R_l points of level l, M gt boxes
(padded), C classes (background is label C), P positives, H_l/W_l feature height/width.
"""
import copy

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.models.dense_heads.anchor_targets import anchor_targets, build_train_cfg
from fcosdet.models.dense_heads.base_dense_head import BaseDenseHead
from fcosdet.models.dense_heads.dense_postprocess import (
    DENSE_TEST_CFG,
    PredictionMaps,
    check_test_cfg,
    dense_predict,
)
from fcosdet.models.dense_heads.dense_utils import (
    build_scales,
    build_tower,
    flatten_levels,
    grid_priors_like,
    head_init_cfg,
    reduce_mean,
)
from fcosdet.models.layers.deform_conv import DeformConv2d
from fcosdet.registry import MODELS, TASK_UTILS
from fcosdet.structures.bbox import bbox_overlaps

INF = 1e8
# (dy, dx) of the 3x3 kernel points relative to the centre, in MMCV's offset order.
_KERNEL_GRID = torch.tensor([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=torch.float)


def star_dcn_offset(bbox_pred: Tensor, gradient_mul: float, stride: int) -> Tensor:
    """Deformable-conv offsets that move the 3x3 kernel onto the star of a box.

    Kernel point (i, j) samples at row ``(-t, 0, b)[i]`` and column ``(-l, 0, r)[j]`` (in
    feature cells) from the point: the box corners, edge midpoints and the point itself. Only
    ``gradient_mul`` of the gradient flows back into ``bbox_pred``.

    Args:
        bbox_pred: ``[N, 4, H_l, W_l]`` distances (l, t, r, b) in pixels.
        gradient_mul: Share of the gradient passed to ``bbox_pred``.
        stride: Stride of the level (pixels per feature cell).

    Returns:
        ``[N, 18, H_l, W_l]``: per kernel point, (dy, dx) minus the regular 3x3 grid position.
    """
    pred = (1 - gradient_mul) * bbox_pred.detach() + gradient_mul * bbox_pred
    left, top, right, bottom = (pred / stride).unbind(dim=1)
    zero = torch.zeros_like(left)
    rows = torch.stack([-top] * 3 + [zero] * 3 + [bottom] * 3, dim=1)  # [N, 9, H_l, W_l]
    cols = torch.stack([-left, zero, right] * 3, dim=1)
    star = torch.stack([rows, cols], dim=2).flatten(1, 2)  # (dy, dx) pairs in kernel order
    return star - _KERNEL_GRID.to(star).reshape(1, 18, 1, 1)


@MODELS.register_module()
class VFNetHead(BaseDenseHead):
    """VarifocalNet head on FCOS-style towers, trained with ATSS targets.

    Per level: towers → initial distances ``exp(s·x)·reg_denom`` → star offsets → deformable
    convs on both towers → refined distances (a factor ``exp(s'·x)`` on the initial ones) and
    IoU-aware class scores. Boxes are absolute-pixel x1y1x2y2, labels in [0, C).

    Args:
        num_classes (int): C.
        in_channels (int): Channels of every input map.
        feat_channels (int): Channels of the tower convs.
        stacked_convs (int): Convs per tower.
        strides (tuple[int, ...]): Stride of each level.
        regress_ranges (tuple[tuple[float, float], ...]): Their upper bounds are the
            ``reg_denom`` of each level (the last one twice the previous).
        center_sampling, center_sample_radius: MMDetection keys of its FCOS targets; must be
            False / ignored here (``use_atss=True`` only).
        sync_num_pos (bool): Average the positive count over ranks.
        gradient_mul (float): Gradient share from the star offsets into the initial boxes.
        bbox_norm_type (str): 'reg_denom' or 'stride': the scale of the initial distances.
        use_vfl (bool): Varifocal loss on IoU targets (True) or ``loss_cls_fl`` on labels.
        loss_cls, loss_cls_fl, loss_bbox, loss_bbox_refine (dict): Loss configs.
        norm_cfg (dict | None): Norm of the tower convs.
        conv_bias (bool | str): Bias of the tower convs ('auto': none with a norm).
        dcn_on_last_conv (bool): Last tower conv is a ``DCNv2``.
        use_atss (bool): ATSS assignment on one square anchor per point (must be True).
        reg_decoded_bbox (bool): Losses on decoded boxes (must be True).
        anchor_generator (dict): The ATSS anchors (TASK_UTILS), as ``prior_generator``
            (MMDetection's ``atss_prior_generator``); the points at their centres are
            ``point_generator``.
        bbox_coder (dict): Distance coder (TASK_UTILS).
        train_cfg (dict | None): ``assigner`` (e.g. ``ATSSAssigner(topk=9)``),
            ``allowed_border``, ``pos_weight``, ``debug``; needed by the losses only.
        test_cfg (dict | None): ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``,
            ``min_bbox_size``.
        init_cfg (dict | list[dict] | None): Default N(0, 0.01) convs, ``vfnet_cls`` bias for
            a 0.01 prior.
    """

    def __init__(self, num_classes: int, in_channels: int, feat_channels: int = 256,
                 stacked_convs: int = 3, strides: tuple[int, ...] = (8, 16, 32, 64, 128),
                 regress_ranges: tuple[tuple[float, float], ...] = (
                     (-1, 64), (64, 128), (128, 256), (256, 512), (512, INF)),
                 center_sampling: bool = False, center_sample_radius: float = 1.5,
                 sync_num_pos: bool = True, gradient_mul: float = 0.1,
                 bbox_norm_type: str = 'reg_denom', use_vfl: bool = True,
                 loss_cls: dict = dict(type='VarifocalLoss', use_sigmoid=True, alpha=0.75,
                                       gamma=2.0, iou_weighted=True, loss_weight=1.0),
                 loss_cls_fl: dict = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                          alpha=0.25, loss_weight=1.0),
                 loss_bbox: dict = dict(type='GIoULoss', loss_weight=1.5),
                 loss_bbox_refine: dict = dict(type='GIoULoss', loss_weight=2.0),
                 norm_cfg: dict | None = dict(type='GN', num_groups=32, requires_grad=True),
                 conv_bias: bool | str = 'auto', dcn_on_last_conv: bool = False,
                 use_atss: bool = True, reg_decoded_bbox: bool = True,
                 anchor_generator: dict = dict(type='AnchorGenerator', ratios=[1.0],
                                               octave_base_scale=8, scales_per_octave=1,
                                               center_offset=0.0,
                                               strides=[8, 16, 32, 64, 128]),
                 bbox_coder: dict = dict(type='DistancePointBBoxCoder'),
                 train_cfg: dict | None = None, test_cfg: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=head_init_cfg('vfnet_cls') if init_cfg is None else init_cfg)
        self._check_args(strides, regress_ranges, center_sampling, bbox_norm_type, use_atss,
                         reg_decoded_bbox)
        self.num_classes = num_classes
        self.feat_channels = feat_channels
        self.strides = tuple(strides)
        self.reg_denoms = [float(r[-1]) for r in regress_ranges[:-1]]
        self.reg_denoms.append(self.reg_denoms[-1] * 2 if self.reg_denoms else 2 * strides[0])
        self.sync_num_pos = sync_num_pos
        self.gradient_mul = gradient_mul
        self.bbox_norm_type = bbox_norm_type
        self.use_vfl = use_vfl
        self.test_cfg = check_test_cfg(test_cfg, DENSE_TEST_CFG, 'VFNetHead')
        self.train_cfg, assigners = build_train_cfg(train_cfg, 'VFNetHead')
        self.assigner = assigners.get('assigner')
        self.loss_cls = MODELS.build(copy.deepcopy(loss_cls if use_vfl else loss_cls_fl))
        self.loss_bbox = MODELS.build(copy.deepcopy(loss_bbox))
        self.loss_bbox_refine = MODELS.build(copy.deepcopy(loss_bbox_refine))
        self.bbox_coder = TASK_UTILS.build(copy.deepcopy(bbox_coder))
        self.prior_generator = TASK_UTILS.build(copy.deepcopy(anchor_generator))
        # Points at the anchor centres (offset 0), for targets and decoding alike.
        self.point_generator = TASK_UTILS.build(dict(
            type='MlvlPointGenerator', strides=self.strides,
            offset=anchor_generator.get('center_offset', 0.0)))

        last = dict(type='DCNv2') if dcn_on_last_conv else None
        self.cls_convs = build_tower(in_channels, feat_channels, stacked_convs, conv_bias,
                                     norm_cfg, last_conv_cfg=last)
        self.reg_convs = build_tower(in_channels, feat_channels, stacked_convs, conv_bias,
                                     norm_cfg, last_conv_cfg=last)
        self.relu = nn.ReLU()
        self.vfnet_reg_conv = ConvModule(feat_channels, feat_channels, 3, padding=1,
                                         norm_cfg=copy.deepcopy(norm_cfg), bias=conv_bias)
        self.vfnet_reg = nn.Conv2d(feat_channels, 4, 3, padding=1)
        self.scales = build_scales(len(self.strides))
        self.vfnet_reg_refine_dconv = DeformConv2d(feat_channels, feat_channels, 3, padding=1)
        self.vfnet_reg_refine = nn.Conv2d(feat_channels, 4, 3, padding=1)
        self.scales_refine = build_scales(len(self.strides))
        self.vfnet_cls_dconv = DeformConv2d(feat_channels, feat_channels, 3, padding=1)
        self.vfnet_cls = nn.Conv2d(feat_channels, num_classes, 3, padding=1)

    @staticmethod
    def _check_args(strides: tuple[int, ...], regress_ranges: tuple[tuple[float, float], ...],
                    center_sampling: bool, bbox_norm_type: str, use_atss: bool,
                    reg_decoded_bbox: bool) -> None:
        """Raise early, naming the key, on values this head does not implement."""
        if len(strides) != len(regress_ranges):
            raise ValueError(f'VFNetHead strides {tuple(strides)} and regress_ranges '
                             f'{tuple(regress_ranges)} must have the same length')
        if bbox_norm_type not in ('reg_denom', 'stride'):
            raise ValueError(f"VFNetHead bbox_norm_type must be 'reg_denom' or 'stride', got "
                             f'{bbox_norm_type!r}')
        if not use_atss or center_sampling or not reg_decoded_bbox:
            raise ValueError('VFNetHead supports use_atss=True, center_sampling=False and '
                             f'reg_decoded_bbox=True only; got use_atss={use_atss}, '
                             f'center_sampling={center_sampling}, '
                             f'reg_decoded_bbox={reg_decoded_bbox}')

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], ...]:
        """Run the head on L maps ``[N, in_channels, H_l, W_l]``.

        Returns:
            tuple[list[Tensor], ...]: per level class logits ``[N, C, H_l, W_l]``, initial
            distances ``[N, 4, H_l, W_l]`` (training only, as MMDetection) and refined
            distances ``[N, 4, H_l, W_l]``, both (l, t, r, b) in pixels.
        """
        if len(x) != len(self.strides):
            raise ValueError(f'VFNetHead got {len(x)} feature maps for {len(self.strides)} '
                             f'strides {self.strides}')
        outs = [self._forward_level(feat, level) for level, feat in enumerate(x)]
        cls_scores, bbox_preds, bbox_preds_refine = (list(o) for o in zip(*outs))
        if self.training:
            return cls_scores, bbox_preds, bbox_preds_refine
        return cls_scores, bbox_preds_refine

    def _forward_level(self, feat: Tensor, level: int) -> tuple[Tensor, Tensor, Tensor]:
        """Class logits, initial and refined distances of one level."""
        stride = self.strides[level]
        cls_feat = self.cls_convs(feat)
        reg_feat = self.reg_convs(feat)
        denom = self.reg_denoms[level] if self.bbox_norm_type == 'reg_denom' else stride
        bbox_pred = self.scales[level](
            self.vfnet_reg(self.vfnet_reg_conv(reg_feat))).float().exp() * denom
        offset = star_dcn_offset(bbox_pred, self.gradient_mul, stride).to(reg_feat.dtype)
        reg_feat = self.relu(self.vfnet_reg_refine_dconv(reg_feat, offset))
        refine = self.scales_refine[level](self.vfnet_reg_refine(reg_feat)).float().exp()
        bbox_pred_refine = refine * bbox_pred.detach()
        cls_score = self.vfnet_cls(self.relu(self.vfnet_cls_dconv(cls_feat, offset)))
        return cls_score, bbox_pred, bbox_pred_refine

    def get_targets(self, cls_scores: list[Tensor], points: list[Tensor],
                    batch_gt_instances: list[InstanceData],
                    batch_img_metas: list[dict]) -> tuple[Tensor, Tensor, Tensor]:
        """ATSS assignment on the square anchors (shared :func:`anchor_targets`), batched.

        Args:
            cls_scores (list[Tensor]): Per level ``[N, C, H_l, W_l]`` (sizes, device).
            points (list[Tensor]): Per level anchor centres ``[R_l, 2]``.
            batch_gt_instances (list[InstanceData]): N gt sets (``bboxes``, ``labels``).
            batch_img_metas (list[dict]): N metas with ``pad_shape``.

        Returns:
            tuple[Tensor, Tensor, Tensor]: labels long ``[N, R]`` (C = background), distance
            targets ``[N, R, 4]`` (l, t, r, b in pixels; meaningful at positives) and
            ``label_weights [N, R]`` (0 for anchors off the image's own padded area).
        """
        targets = anchor_targets(self, cls_scores, batch_gt_instances, batch_img_metas)
        flat_points = torch.cat(points)[None].to(targets.assign.bbox_targets)
        distances = self.bbox_coder.encode(flat_points, targets.assign.bbox_targets)
        return targets.assign.labels, distances, targets.label_weights

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     bbox_preds_refine: list[Tensor], batch_gt_instances: list[InstanceData],
                     batch_img_metas: list[dict],
                     batch_gt_instances_ignore: list[InstanceData] | None = None
                     ) -> dict[str, Tensor]:
        """Varifocal loss on IoU-aware targets and IoU-weighted GIoU losses of both boxes.

        Args:
            cls_scores (list[Tensor]): Per level ``[N, C, H_l, W_l]``.
            bbox_preds, bbox_preds_refine (list[Tensor]): Per level ``[N, 4, H_l, W_l]``.
            batch_gt_instances (list[InstanceData]): N gt sets.
            batch_img_metas (list[dict]): N metas with ``pad_shape``.
            batch_gt_instances_ignore: Accepted for MMDetection compatibility; ignored boxes
                are not assigned.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_bbox_rf``.
        """
        points = grid_priors_like(self.point_generator, bbox_preds)
        labels, bbox_targets, label_weights = self.get_targets(
            cls_scores, points, batch_gt_instances, batch_img_metas)
        flat_cls = flatten_levels(cls_scores).reshape(-1, self.num_classes)  # [N*R, C]
        flat_bbox = flatten_levels(bbox_preds)  # [N, R, 4]
        flat_refine = flatten_levels(bbox_preds_refine)
        pos_mask = (labels >= 0) & (labels < self.num_classes)  # [N, R]
        num_pos = pos_mask.sum().to(flat_bbox.dtype)
        avg_pos = (reduce_mean(num_pos) if self.sync_num_pos else num_pos).clamp(min=1.0)

        pos_points = torch.cat(points)[None].expand(labels.shape[0], -1, -1)[pos_mask]
        pos_target = self.bbox_coder.decode(pos_points, bbox_targets[pos_mask])  # [P, 4]
        losses, iou_refine = {}, None
        for key, preds, loss_fn in (('loss_bbox', flat_bbox, self.loss_bbox),
                                    ('loss_bbox_rf', flat_refine, self.loss_bbox_refine)):
            if pos_target.shape[0] == 0:  # exact zero attached to the graph
                losses[key] = preds.sum() * 0
                continue
            pos_boxes = self.bbox_coder.decode(pos_points, preds[pos_mask])
            iou = bbox_overlaps(pos_boxes, pos_target, is_aligned=True).clamp(min=1e-6)
            iou = iou.detach()
            avg_iou = reduce_mean(iou.sum()).clamp(min=1.0).item()
            losses[key] = loss_fn(pos_boxes, pos_target, weight=iou, avg_factor=avg_iou)
            iou_refine = iou
        if self.use_vfl:
            cls_targets = torch.zeros_like(flat_cls)  # IoU of the refined box at its class
            if iou_refine is not None:
                pos_rows = pos_mask.reshape(-1).nonzero()[:, 0]
                cls_targets[pos_rows, labels[pos_mask]] = iou_refine.to(flat_cls.dtype)
            loss_cls = self.loss_cls(flat_cls, cls_targets, avg_factor=avg_pos)
        else:
            loss_cls = self.loss_cls(flat_cls, labels.reshape(-1),
                                     weight=label_weights.reshape(-1), avg_factor=avg_pos)
        return dict(loss_cls=loss_cls, **losses)

    def predict_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        batch_img_metas: list[dict], cfg: dict | None = None,
                        rescale: bool = False) -> list[InstanceData]:
        """Detections from class logits and refined distances, batched over the images.

        Args:
            cls_scores (list[Tensor]): Per level ``[N, C, H_l, W_l]`` logits (IoU-aware).
            bbox_preds (list[Tensor]): Per level refined distances ``[N, 4, H_l, W_l]``.
            batch_img_metas (list[dict]): N metas with ``img_shape`` (and ``scale_factor``).
            cfg (dict | None): Keys overriding ``self.test_cfg`` for this call.
            rescale (bool): Divide boxes by ``scale_factor``.

        Returns:
            list[InstanceData]: N results, ``bboxes [K, 4]``, ``scores [K]``, ``labels [K]``.
        """
        return dense_predict(self, self.prediction_maps(cls_scores, bbox_preds),
                             batch_img_metas, cfg, rescale)

    def prediction_maps(self, cls_scores: list[Tensor],
                        bbox_preds: list[Tensor]) -> PredictionMaps:
        """IoU-aware class probabilities and, by name, the points and refined distances
        :meth:`decode_candidates` reads (maps as from :meth:`forward` in eval mode)."""
        return PredictionMaps([s.sigmoid() for s in cls_scores],
                              dict(points=grid_priors_like(self.point_generator, bbox_preds),
                                   distances=bbox_preds))

    def decode_candidates(self, cls_prob: Tensor, picked: dict[str, Tensor], img_shapes: Tensor,
                          cfg: dict) -> tuple[Tensor, Tensor]:
        """Boxes ``[N, K, 4]`` of the picked ``points [N, K, 2]`` and refined ``distances
        [N, K, 4]`` clipped to ``img_shapes [N, 2]``; scores are ``cls_prob [N, K]``."""
        boxes = self.bbox_coder.decode(picked['points'], picked['distances'],
                                       max_shape=img_shapes)
        return boxes, cls_prob
