"""DDOD head: ATSS-style anchors with disentangled classification / regression assignment.

Shape letters: N images, L levels, R priors (all levels), R_l priors of level l, M gt boxes
(padded), C classes (background is label C), K detections, H_l/W_l feature height/width.
"""
import copy

import torch
import torch.nn as nn
from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.models.dense_heads.anchor_targets import AnchorTargets, anchor_targets, build_train_cfg
from fcosdet.models.dense_heads.base_dense_head import BaseDenseHead
from fcosdet.models.dense_heads.dense_postprocess import (
    DENSE_TEST_CFG,
    check_test_cfg,
    finish_detections,
    topk_candidates,
)
from fcosdet.models.dense_heads.dense_utils import (
    build_scales,
    build_tower,
    flatten_levels,
    head_init_cfg,
    metas_tensor,
)
from fcosdet.models.layers import resolve_conv_cfg
from fcosdet.models.losses.level_reweight import count_level_positives, level_reweight_factors
from fcosdet.registry import MODELS, TASK_UTILS
from fcosdet.structures import bbox_overlaps

GN32 = dict(type='GN', num_groups=32, requires_grad=True)


@MODELS.register_module()
class DDODHead(BaseDenseHead):
    """DDOD head (Chen et al., "Disentangle Your Dense Object Detector", ACM MM 2021).

    One square anchor per location (``AnchorGenerator``, box deltas ``DeltaXYWHBBoxCoder``), two
    towers whose first conv is deformable (``use_dcn``), class logits on the classification
    tower, box deltas and an IoU logit on the regression tower. Training assigns twice with
    cost-based ATSS (``train_cfg['assigner']`` for classification, ``train_cfg['reg_assigner']``
    for regression), each level's losses are scaled by :func:`level_reweight_factors` of the
    positives counted so far, and at test time the class probability is multiplied by the
    sigmoid of the IoU logit. Boxes are absolute-pixel x1y1x2y2, labels lie in [0, C).

    Args:
        num_classes (int): C, number of object classes.
        in_channels (int): Channels of every input feature map.
        feat_channels (int): Channels of the tower convs.
        stacked_convs (int): Convs per tower (``cls_convs`` / ``reg_convs``), at least 1.
        use_dcn (bool): The first conv of each tower is a DCN (``conv_cfg=dict(type='DCN')``).
        conv_cfg (dict | None): Conv config of the other tower convs.
        norm_cfg (dict | None): Norm of the tower convs.
        anchor_generator, bbox_coder (dict): TASK_UTILS configs.
        loss_cls, loss_bbox, loss_iou (dict): MODELS configs (focal, GIoU on decoded boxes,
            sigmoid cross-entropy of the IoU logit).
        train_cfg (dict | None): ``assigner``, ``reg_assigner`` (both needed for ``loss``),
            ``allowed_border``, ``pos_weight``, ``debug`` (MMDetection's keys).
        test_cfg (dict | None): ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``,
            ``min_bbox_size``.
        init_cfg (dict | list[dict] | None): Defaults to N(0, 0.01) convs, zero bias, class bias
            for a 0.01 prior; DCN offsets start at zero (see :meth:`init_weights`).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 feat_channels: int = 256,
                 stacked_convs: int = 4,
                 use_dcn: bool = True,
                 conv_cfg: dict | None = None,
                 norm_cfg: dict | None = GN32,
                 anchor_generator: dict = dict(type='AnchorGenerator', ratios=[1.0],
                                               octave_base_scale=8, scales_per_octave=1,
                                               strides=[8, 16, 32, 64, 128]),
                 bbox_coder: dict = dict(type='DeltaXYWHBBoxCoder',
                                         target_means=[.0, .0, .0, .0],
                                         target_stds=[0.1, 0.1, 0.2, 0.2]),
                 loss_cls: dict = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                       alpha=0.25, loss_weight=1.0),
                 loss_bbox: dict = dict(type='GIoULoss', loss_weight=2.0),
                 loss_iou: dict = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                       loss_weight=1.0),
                 train_cfg: dict | None = None,
                 test_cfg: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=head_init_cfg('atss_cls') if init_cfg is None else init_cfg)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'DDODHead num_classes must be a positive int, got {num_classes!r}')
        if not isinstance(stacked_convs, int) or stacked_convs < 1:
            raise ValueError(f'DDODHead stacked_convs must be an int >= 1, got {stacked_convs!r}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        # both assigners are needed for loss(); None train_cfg = an inference-only head
        self.train_cfg, self.assigners = build_train_cfg(train_cfg, 'DDODHead',
                                                         ('assigner', 'reg_assigner'))
        self.test_cfg = check_test_cfg(test_cfg, DENSE_TEST_CFG, 'DDODHead')
        self.prior_generator = TASK_UTILS.build(copy.deepcopy(anchor_generator))
        self.bbox_coder = TASK_UTILS.build(copy.deepcopy(bbox_coder))
        self.loss_cls = MODELS.build(copy.deepcopy(loss_cls))
        self.loss_bbox = MODELS.build(copy.deepcopy(loss_bbox))
        self.loss_iou = MODELS.build(copy.deepcopy(loss_iou))

        # resolved here so that 'DCN' builds whatever the default scope is
        first_cfg = resolve_conv_cfg(dict(type='DCN', deform_groups=1) if use_dcn else conv_cfg)
        conv_cfg = resolve_conv_cfg(conv_cfg)
        self.cls_convs = self._tower(stacked_convs, first_cfg, conv_cfg, norm_cfg)
        self.reg_convs = self._tower(stacked_convs, first_cfg, conv_cfg, norm_cfg)
        self.atss_cls = nn.Conv2d(feat_channels, num_classes, 3, padding=1)
        self.atss_reg = nn.Conv2d(feat_channels, 4, 3, padding=1)
        self.atss_iou = nn.Conv2d(feat_channels, 1, 3, padding=1)
        num_levels = len(self.prior_generator.strides)
        self.scales = build_scales(num_levels)
        # Positives per level, as MMDetection keeps them: summed over the whole life of the head
        # (never reset), both assignments adding to the same counts, local to each process (a
        # plain attribute: not in the state dict, not broadcast by DDP).
        self.cls_num_pos_samples_per_level = torch.zeros(num_levels, dtype=torch.float64)

    def _tower(self, stacked_convs: int, first_conv_cfg: dict | None, conv_cfg: dict | None,
               norm_cfg: dict | None) -> nn.Sequential:
        """(first conv, norm, ReLU) + the shared tower of the remaining convs; names ``{i}.conv``
        / ``{i}.gn`` as MMDetection's."""
        first = build_tower(self.in_channels, self.feat_channels, 1, norm_cfg=norm_cfg,
                            conv_cfg=first_conv_cfg)
        rest = build_tower(self.feat_channels, self.feat_channels, stacked_convs - 1,
                           norm_cfg=norm_cfg, conv_cfg=conv_cfg)
        return nn.Sequential(*first, *rest)

    def init_weights(self) -> None:
        """``init_cfg`` on the plain convs, then N(0, 0.01) on the DCN weights and zero DCN
        offsets (so a DCN starts as a plain conv), as MMDetection's ``normal_init`` does."""
        super().init_weights()
        for tower in (self.cls_convs, self.reg_convs):
            for module in tower:
                offset = getattr(module.conv, 'conv_offset', None)
                if offset is not None:
                    nn.init.normal_(module.conv.weight, 0, 0.01)
                    nn.init.zeros_(offset.weight)
                    nn.init.zeros_(offset.bias)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Run the shared head on every level.

        Args:
            x (tuple[Tensor, ...]): L feature maps ``[N, in_channels, H_l, W_l]``.

        Returns:
            tuple[list[Tensor], list[Tensor], list[Tensor]]: per level, class logits
            ``[N, C, H_l, W_l]``, box deltas ``[N, 4, H_l, W_l]`` (scaled, float32) and IoU
            logits ``[N, 1, H_l, W_l]``.
        """
        if len(x) != len(self.scales):
            raise ValueError(f'DDODHead got {len(x)} feature maps for {len(self.scales)} '
                             f'anchor strides {tuple(self.prior_generator.strides)}')
        cls_scores, bbox_preds, iou_preds = [], [], []
        for feat, scale in zip(x, self.scales):
            reg_feat = self.reg_convs(feat)
            cls_scores.append(self.atss_cls(self.cls_convs(feat)))
            bbox_preds.append(scale(self.atss_reg(reg_feat)).float())
            iou_preds.append(self.atss_iou(reg_feat))
        return cls_scores, bbox_preds, iou_preds

    def loss_by_feat(self,
                     cls_scores: list[Tensor],
                     bbox_preds: list[Tensor],
                     iou_preds: list[Tensor],
                     batch_gt_instances: list[InstanceData],
                     batch_img_metas: list[dict],
                     batch_gt_instances_ignore: list[InstanceData] | None = None
                     ) -> dict[str, Tensor]:
        """Focal, GIoU and IoU-branch losses with separate cls / reg assignment.

        Ignored (crowd) instances never create positives; ``batch_gt_instances_ignore`` is
        accepted for MMDetection call compatibility only.

        Args:
            cls_scores (list[Tensor]): Per level ``[N, C, H_l, W_l]``.
            bbox_preds (list[Tensor]): Per level ``[N, 4, H_l, W_l]`` deltas.
            iou_preds (list[Tensor]): Per level ``[N, 1, H_l, W_l]``.
            batch_gt_instances (list[InstanceData]): N gt sets (``bboxes``, ``labels``).
            batch_img_metas (list[dict]): N metas with ``pad_shape``.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_iou`` (each the sum over the
            levels of MMDetection's per-level losses).
        """
        if not self.assigners:
            raise ValueError("DDODHead.loss_by_feat needs train_cfg with 'assigner' and "
                             "'reg_assigner'")
        featmap_sizes = [tuple(s.shape[-2:]) for s in cls_scores]
        flat_cls = flatten_levels(cls_scores)  # [N, R, C]
        flat_deltas = flatten_levels(bbox_preds)  # [N, R, 4]
        flat_iou = flatten_levels(iou_preds)[..., 0]  # [N, R]
        anchors = self.prior_generator.grid_priors(featmap_sizes, dtype=flat_deltas.dtype,
                                                   device=flat_deltas.device)
        num_level_anchors = [len(a) for a in anchors]
        # both assigners rate their candidates with the current predictions
        pred = dict(pred_scores=flat_cls.detach(),
                    pred_bboxes=self.bbox_coder.decode(torch.cat(anchors), flat_deltas.detach()))
        cls_targets, reg_targets = (
            anchor_targets(self.prior_generator, self.assigners[key], featmap_sizes,
                           batch_gt_instances, batch_img_metas, self.num_classes,
                           self.train_cfg, flat_deltas, 'DDODHead', **pred)
            for key in ('assigner', 'reg_assigner'))

        factors = self._level_factors(cls_targets.assign.pos_mask, num_level_anchors)  # [R]
        loss_cls = self.loss_cls(flat_cls.reshape(-1, self.num_classes),
                                 cls_targets.assign.labels.reshape(-1),
                                 (cls_targets.label_weights * factors).reshape(-1),
                                 avg_factor=cls_targets.avg_factor)
        factors = self._level_factors(reg_targets.assign.pos_mask, num_level_anchors)
        loss_bbox, loss_iou = self._loss_reg(reg_targets, flat_deltas, flat_iou, factors)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_iou=loss_iou)

    def _loss_reg(self, targets: AnchorTargets, flat_deltas: Tensor, flat_iou: Tensor,
                  factors: Tensor) -> tuple[Tensor, Tensor]:
        """GIoU loss of the decoded positive boxes and sigmoid CE of their IoU logits.

        Args:
            targets (AnchorTargets): The regression assignment.
            flat_deltas (Tensor): ``[N, R, 4]`` predicted deltas.
            flat_iou (Tensor): ``[N, R]`` IoU logits.
            factors (Tensor): ``[R]`` level reweight factor of every anchor.

        Returns:
            tuple[Tensor, Tensor]: ``loss_bbox`` and ``loss_iou``, exactly 0 and still attached
            to the predictions when there is no positive.
        """
        pos = targets.assign.pos_mask  # [N, R]
        if not bool(pos.any()):
            return flat_deltas.sum() * 0, flat_iou.sum() * 0
        pos_anchors = targets.flat_anchors.expand_as(flat_deltas)[pos]  # [P, 4]
        pos_factors = factors.expand_as(pos)[pos]  # [P]
        pred = self.bbox_coder.decode(pos_anchors, flat_deltas[pos])
        # The target goes through encode/decode as in MMDetection (equal up to rounding).
        target = self.bbox_coder.decode(
            pos_anchors, self.bbox_coder.encode(pos_anchors, targets.assign.bbox_targets[pos]))
        loss_bbox = self.loss_bbox(pred, target, weight=pos_factors,
                                   avg_factor=targets.avg_factor)
        # IoU target: how well the (detached) predicted box overlaps its gt
        iou_targets = bbox_overlaps(pred.detach(), target, is_aligned=True)
        loss_iou = self.loss_iou(flat_iou[pos], iou_targets, weight=pos_factors,
                                 avg_factor=targets.avg_factor)
        return loss_bbox, loss_iou

    def _level_factors(self, pos_mask: Tensor, num_level_anchors: list[int]) -> Tensor:
        """Add one assignment's positives to the running per-level counts.

        Args:
            pos_mask (Tensor): Bool ``[N, R]`` positives of the assignment.
            num_level_anchors (list[int]): L counts ``R_l``.

        Returns:
            Tensor: ``[R]`` the factor of each anchor's level (dtype of the losses).
        """
        counts = count_level_positives(pos_mask, num_level_anchors)
        self.cls_num_pos_samples_per_level = (
            self.cls_num_pos_samples_per_level.to(counts.device) + counts)
        factors = level_reweight_factors(self.cls_num_pos_samples_per_level)  # [L]
        sizes = torch.tensor(num_level_anchors, device=counts.device)
        return factors.repeat_interleave(sizes).float()

    def predict_by_feat(self,
                        cls_scores: list[Tensor],
                        bbox_preds: list[Tensor],
                        iou_preds: list[Tensor],
                        batch_img_metas: list[dict],
                        cfg: dict | None = None,
                        rescale: bool = False) -> list[InstanceData]:
        """Detections, batched over the images: per level the best ``nms_pre`` (anchor, class)
        pairs above ``score_thr``, boxes decoded and clipped to ``img_shape``, scored
        cls · sigmoid(IoU logit), rescaled, size-filtered and reduced by class-aware NMS.

        Args:
            cls_scores (list[Tensor]): Per level ``[N, C, H_l, W_l]`` logits.
            bbox_preds (list[Tensor]): Per level ``[N, 4, H_l, W_l]`` deltas.
            iou_preds (list[Tensor]): Per level ``[N, 1, H_l, W_l]`` logits.
            batch_img_metas (list[dict]): N metas with ``img_shape`` (and ``scale_factor``
                when ``rescale``).
            cfg (dict | None): Keys overriding ``self.test_cfg`` for this call.
            rescale (bool): Divide boxes by ``scale_factor`` (w, h, w, h).

        Returns:
            list[InstanceData]: N results, ``bboxes [K, 4]``, ``scores [K]``, ``labels [K]``.
        """
        cfg = self.test_cfg if cfg is None else check_test_cfg(cfg, self.test_cfg, 'DDODHead')
        featmap_sizes = [tuple(s.shape[-2:]) for s in cls_scores]
        mlvl_priors = self.prior_generator.grid_priors(
            featmap_sizes, dtype=bbox_preds[0].dtype, device=bbox_preds[0].device)
        scores, labels, valid, (deltas, iou_logits, priors) = topk_candidates(
            [c.sigmoid() for c in cls_scores],
            [list(level) for level in zip(bbox_preds, iou_preds, mlvl_priors)],
            cfg['score_thr'], cfg['nms_pre'])
        img_shapes = metas_tensor(batch_img_metas, 'img_shape', deltas, 'DDODHead')
        boxes = self.bbox_coder.decode(priors, deltas, max_shape=img_shapes[:, :2])
        scores = scores * iou_logits[..., 0].sigmoid()
        return finish_detections(boxes, scores, labels, valid, batch_img_metas, cfg, rescale,
                                 self.num_classes, 'DDODHead')
