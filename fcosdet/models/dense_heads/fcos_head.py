"""FCOS head: shared conv towers, per-point class / box / centre-ness predictions.

Shape letters: N images, L levels, R points (all levels), R_l points of level l, M gt boxes
(padded), C classes (background is label C), K detections, H_l/W_l feature height/width.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor

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
from fcosdet.models.task_modules.fcos_assigner import centerness_target
from fcosdet.models.task_modules.pad_gt import pad_gt_instances
from fcosdet.registry import MODELS, TASK_UTILS

INF = 1e8
DEFAULT_TEST_CFG = dict(DENSE_TEST_CFG, with_sqrt_score=False)


@MODELS.register_module()
class FCOSHead(BaseDenseHead):
    """Anchor-free FCOS head (Tian et al., ICCV 2019).

    Every feature-map location is a point; it predicts C sigmoid class logits, distances
    (l, t, r, b) in pixels from the point to the box sides, and a centre-ness logit. Boxes are
    absolute-pixel x1y1x2y2, labels lie in [0, C) and ``num_classes`` excludes background.

    Args:
        num_classes (int): C, number of object classes.
        in_channels (int): Channels of every input feature map.
        feat_channels (int): Channels of the tower convs.
        stacked_convs (int): Convs per tower (``cls_convs`` / ``reg_convs``).
        strides (tuple[int, ...]): Stride of each level.
        regress_ranges (tuple[tuple[float, float], ...]): Box-size range of each level.
        center_sampling (bool): Only points near a box centre become positives.
        center_sample_radius (float): Radius of centre sampling in strides.
        norm_on_bbox (bool): Distances are relu(s·x) in stride units (×stride at test).
        centerness_on_reg (bool): Centre-ness branch on the regression tower.
        conv_bias (bool | str): Bias of tower convs; 'auto' = no bias when a norm follows.
        norm_cfg (dict | None): Norm of tower convs.
        dcn_on_last_conv (bool): The last conv of each tower is a deformable ``DCNv2``.
        loss_cls, loss_bbox, loss_centerness (dict): Loss configs (MODELS).
        bbox_coder, prior_generator, assigner (dict | None): TASK_UTILS configs; the assigner
            gets ``strides``, ``regress_ranges``, ``center_sampling``,
            ``center_sample_radius`` and ``norm_on_bbox`` as default arguments.
        test_cfg (dict | None): ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``,
            ``min_bbox_size`` and ``with_sqrt_score`` (score sqrt(cls·ctr) instead of cls·ctr).
        init_cfg (dict | list[dict] | None): Defaults to N(0, 0.01) convs with zero bias and
            the class bias set for a 0.01 prior probability.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 feat_channels: int = 256,
                 stacked_convs: int = 4,
                 strides: tuple[int, ...] = (8, 16, 32, 64, 128),
                 regress_ranges: tuple[tuple[float, float], ...] = (
                     (-1, 64), (64, 128), (128, 256), (256, 512), (512, INF)),
                 center_sampling: bool = False,
                 center_sample_radius: float = 1.5,
                 norm_on_bbox: bool = False,
                 centerness_on_reg: bool = False,
                 conv_bias: bool | str = 'auto',
                 norm_cfg: dict | None = dict(type='GN', num_groups=32, requires_grad=True),
                 dcn_on_last_conv: bool = False,
                 loss_cls: dict = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                       alpha=0.25, loss_weight=1.0),
                 loss_bbox: dict = dict(type='IoULoss', loss_weight=1.0),
                 loss_centerness: dict = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                              loss_weight=1.0),
                 bbox_coder: dict = dict(type='DistancePointBBoxCoder'),
                 prior_generator: dict | None = None,
                 assigner: dict = dict(type='FCOSAssigner'),
                 test_cfg: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=head_init_cfg('conv_cls') if init_cfg is None else init_cfg)
        self._check_args(num_classes, stacked_convs, strides, regress_ranges, conv_bias)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.strides = tuple(strides)
        self.norm_on_bbox = norm_on_bbox
        self.centerness_on_reg = centerness_on_reg
        self.dcn_on_last_conv = dcn_on_last_conv
        self.test_cfg = check_test_cfg(test_cfg, DEFAULT_TEST_CFG, 'FCOSHead')

        self.loss_cls = MODELS.build(copy.deepcopy(loss_cls))
        self.loss_bbox = MODELS.build(copy.deepcopy(loss_bbox))
        self.loss_centerness = MODELS.build(copy.deepcopy(loss_centerness))
        self.bbox_coder = TASK_UTILS.build(copy.deepcopy(bbox_coder))
        self.prior_generator = TASK_UTILS.build(
            copy.deepcopy(prior_generator) if prior_generator is not None else
            dict(type='MlvlPointGenerator', strides=self.strides, offset=0.5))
        self.assigner = TASK_UTILS.build(
            copy.deepcopy(assigner),
            default_args=dict(strides=self.strides, regress_ranges=tuple(regress_ranges),
                              center_sampling=center_sampling,
                              center_sample_radius=center_sample_radius,
                              norm_on_bbox=norm_on_bbox))

        self.cls_convs = self._tower(stacked_convs, conv_bias, norm_cfg)
        self.reg_convs = self._tower(stacked_convs, conv_bias, norm_cfg)
        tower_channels = feat_channels if stacked_convs > 0 else in_channels
        self.conv_cls = nn.Conv2d(tower_channels, num_classes, 3, padding=1)
        self.conv_reg = nn.Conv2d(tower_channels, 4, 3, padding=1)
        self.conv_centerness = nn.Conv2d(tower_channels, 1, 3, padding=1)
        self.scales = build_scales(len(self.strides))

    @staticmethod
    def _check_args(num_classes: int, stacked_convs: int, strides: tuple[int, ...],
                    regress_ranges: tuple[tuple[float, float], ...],
                    conv_bias: bool | str) -> None:
        """Raise early, naming the key, on invalid constructor values."""
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'FCOSHead num_classes must be a positive int, got {num_classes!r}')
        if not isinstance(stacked_convs, int) or stacked_convs < 0:
            raise ValueError(f'FCOSHead stacked_convs must be an int >= 0, got {stacked_convs!r}')
        if len(strides) != len(regress_ranges):
            raise ValueError(f'FCOSHead strides {tuple(strides)} and regress_ranges '
                             f'{tuple(regress_ranges)} must have the same length')
        if conv_bias != 'auto' and not isinstance(conv_bias, bool):
            raise ValueError(f"FCOSHead conv_bias must be 'auto' or a bool, got {conv_bias!r}")

    def _tower(self, stacked_convs: int, conv_bias: bool | str,
               norm_cfg: dict | None) -> nn.Sequential:
        """``stacked_convs`` × (3×3 conv, norm, ReLU); module names ``{i}.conv`` / ``{i}.gn``.

        With ``dcn_on_last_conv`` the last conv is a ``DCNv2`` (MMCV's name). A method (not a
        direct :func:`build_tower` call) so that a subclass can swap the convs.
        """
        return build_tower(self.in_channels, self.feat_channels, stacked_convs, conv_bias,
                           norm_cfg, last_conv_cfg=dict(type='DCNv2') if self.dcn_on_last_conv
                           else None)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Run the shared head on every level.

        Args:
            x (tuple[Tensor, ...]): L feature maps ``[N, in_channels, H_l, W_l]``.

        Returns:
            tuple[list[Tensor], list[Tensor], list[Tensor]]: per level, class logits
            ``[N, C, H_l, W_l]``, distances ``[N, 4, H_l, W_l]`` (pixels; stride units when
            ``norm_on_bbox`` and training) and centre-ness logits ``[N, 1, H_l, W_l]``.
        """
        if len(x) != len(self.strides):
            raise ValueError(f'FCOSHead got {len(x)} feature maps for {len(self.strides)} '
                             f'strides {self.strides}')
        cls_scores, bbox_preds, centernesses = [], [], []
        for feat, scale, stride in zip(x, self.scales, self.strides):
            cls_feat = self.cls_convs(feat)
            reg_feat = self.reg_convs(feat)
            cls_scores.append(self.conv_cls(cls_feat))
            centernesses.append(
                self.conv_centerness(reg_feat if self.centerness_on_reg else cls_feat))
            bbox_pred = scale(self.conv_reg(reg_feat)).float()
            if self.norm_on_bbox:
                bbox_pred = F.relu(bbox_pred)
                if not self.training:
                    bbox_pred = bbox_pred * stride
            else:
                bbox_pred = bbox_pred.exp()
            bbox_preds.append(bbox_pred)
        return cls_scores, bbox_preds, centernesses

    def get_targets(self, points: list[Tensor],
                    batch_gt_instances: list[InstanceData]) -> tuple[Tensor, Tensor]:
        """Assign every point of every image to a class and box, batched.

        Args:
            points (list[Tensor]): Per level points ``[R_l, 2]``.
            batch_gt_instances (list[InstanceData]): N items with ``bboxes [M_n, 4]`` and
                ``labels [M_n]``.

        Returns:
            tuple[Tensor, Tensor]: ``labels`` long ``[N, R]`` (C = background) and
            ``bbox_targets`` ``[N, R, 4]`` (l, t, r, b; stride units when ``norm_on_bbox``).
        """
        gt_bboxes, gt_labels, gt_valid = pad_gt_instances(batch_gt_instances, like=points[0])
        return self.assigner.assign(points, gt_bboxes, gt_labels, gt_valid, self.num_classes)

    def loss_by_feat(self,
                     cls_scores: list[Tensor],
                     bbox_preds: list[Tensor],
                     centernesses: list[Tensor],
                     batch_gt_instances: list[InstanceData],
                     batch_img_metas: list[dict] | None = None,
                     batch_gt_instances_ignore: list[InstanceData] | None = None
                     ) -> dict[str, Tensor]:
        """Focal, IoU and centre-ness losses over all points of the batch.

        Ignored (crowd) instances are deliberately not given to the assigner, so they never
        create positives; ``batch_img_metas`` and ``batch_gt_instances_ignore`` are accepted
        for MMDetection call compatibility only.

        Args:
            cls_scores (list[Tensor]): Per level ``[N, C, H_l, W_l]``.
            bbox_preds (list[Tensor]): Per level ``[N, 4, H_l, W_l]``.
            centernesses (list[Tensor]): Per level ``[N, 1, H_l, W_l]``.
            batch_gt_instances (list[InstanceData]): N gt sets (``bboxes``, ``labels``).

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_centerness``.
        """
        points = grid_priors_like(self.prior_generator, bbox_preds)
        labels, bbox_targets = self.get_targets(points, batch_gt_instances)

        flat_cls = flatten_levels(cls_scores).reshape(-1, self.num_classes)  # [N*R, C]
        flat_bbox = flatten_levels(bbox_preds)  # [N, R, 4]
        flat_ctr = flatten_levels(centernesses)[..., 0]  # [N, R]
        flat_labels = labels.reshape(-1)
        pos_mask = (labels >= 0) & (labels < self.num_classes)  # [N, R]

        num_pos = reduce_mean(pos_mask.sum().to(flat_bbox.dtype)).clamp(min=1.0)
        loss_cls = self.loss_cls(flat_cls, flat_labels, avg_factor=num_pos)

        pos_points = torch.cat(points)[None].expand(labels.shape[0], -1, -1)[pos_mask]
        pos_bbox_preds = flat_bbox[pos_mask]  # [P, 4]
        pos_bbox_targets = bbox_targets[pos_mask]
        pos_ctr = flat_ctr[pos_mask]  # [P]
        ctr_targets = centerness_target(pos_bbox_targets)
        ctr_denorm = reduce_mean(ctr_targets.sum().detach()).clamp(min=1e-6)
        if pos_bbox_preds.shape[0] == 0:
            # Exact zeros that keep every prediction in the graph (DDP needs used params).
            return dict(loss_cls=loss_cls, loss_bbox=flat_bbox.sum() * 0,
                        loss_centerness=flat_ctr.sum() * 0)
        loss_bbox = self.loss_bbox(self.bbox_coder.decode(pos_points, pos_bbox_preds),
                                   self.bbox_coder.decode(pos_points, pos_bbox_targets),
                                   weight=ctr_targets, avg_factor=ctr_denorm)
        loss_centerness = self.loss_centerness(pos_ctr, ctr_targets, avg_factor=num_pos)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_centerness=loss_centerness)

    def predict_by_feat(self,
                        cls_scores: list[Tensor],
                        bbox_preds: list[Tensor],
                        centernesses: list[Tensor],
                        batch_img_metas: list[dict],
                        cfg: dict | None = None,
                        rescale: bool = False) -> list[InstanceData]:
        """Turn raw head outputs into detections, batched over the images.

        Per level, (point, class) pairs whose probability exceeds ``score_thr`` are kept (at
        most ``nms_pre`` per image); their boxes are decoded and clipped to ``img_shape``,
        scored cls·sigmoid(ctr) (or its sqrt), optionally rescaled to the original image,
        and reduced by class-aware NMS to at most ``max_per_img`` per image.

        Args:
            cls_scores (list[Tensor]): Per level ``[N, C, H_l, W_l]`` logits.
            bbox_preds (list[Tensor]): Per level ``[N, 4, H_l, W_l]`` pixel distances.
            centernesses (list[Tensor]): Per level ``[N, 1, H_l, W_l]`` logits.
            batch_img_metas (list[dict]): N metas with ``img_shape`` (and ``scale_factor``
                when ``rescale``).
            cfg (dict | None): Keys overriding ``self.test_cfg`` for this call.
            rescale (bool): Divide boxes by ``scale_factor`` (w, h, w, h).

        Returns:
            list[InstanceData]: N results, ``bboxes [K, 4]``, ``scores [K]``, ``labels [K]``.
        """
        return dense_predict(self, self.prediction_maps(cls_scores, bbox_preds, centernesses),
                             batch_img_metas, cfg, rescale)

    def prediction_maps(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        centernesses: list[Tensor]) -> PredictionMaps:
        """Class probabilities and, by name, the centre-ness logits, points and distances
        :meth:`decode_candidates` reads (maps as from :meth:`forward`)."""
        points = grid_priors_like(self.prior_generator, bbox_preds)
        return PredictionMaps([s.sigmoid() for s in cls_scores],
                              dict(centerness=centernesses, points=points, distances=bbox_preds))

    def decode_candidates(self, cls_prob: Tensor, picked: dict[str, Tensor], img_shapes: Tensor,
                          cfg: dict) -> tuple[Tensor, Tensor]:
        """Candidate boxes ``[N, K, 4]`` clipped to ``img_shapes [N, 2]`` and scores
        cls·sigmoid(ctr) ``[N, K]`` (or their sqrt), from ``cls_prob [N, K]`` and the picked
        ``centerness`` logits ``[N, K, 1]``, ``points [N, K, 2]`` and ``distances [N, K, 4]``."""
        boxes = self.bbox_coder.decode(picked['points'], picked['distances'],
                                       max_shape=img_shapes)
        scores = cls_prob * picked['centerness'][..., 0].sigmoid()
        return boxes, scores.sqrt() if cfg['with_sqrt_score'] else scores
