"""DDOD head: ATSS-style anchors with disentangled classification / regression assignment.

Shape letters: N images, L levels, R priors (all levels), R_l priors of level l, M gt boxes
(padded), C classes (background is label C), K detections, H_l/W_l feature height/width.
"""
import torch
import torch.nn as nn
from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.models.dense_heads.anchor_targets import (
    AnchorTargets,
    anchor_settings,
    anchor_targets,
    anchor_towers,
    build_loss,
    prediction_conv,
)
from fcosdet.models.dense_heads.atss_head import FAMILY_ANCHORS, GN
from fcosdet.models.dense_heads.base_dense_head import BaseDenseHead
from fcosdet.models.dense_heads.dense_postprocess import (
    PredictionMaps,
    decode_deltas_with_quality,
    dense_predict,
)
from fcosdet.models.dense_heads.dense_utils import (
    build_scales,
    build_tower,
    flatten_levels,
    grid_priors_like,
    head_init_cfg,
)
from fcosdet.models.layers import resolve_conv_cfg
from fcosdet.models.losses.level_reweight import count_level_positives, level_reweight_factors
from fcosdet.registry import MODELS
from fcosdet.structures import bbox_overlaps


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
                 norm_cfg: dict | None = GN,
                 anchor_generator: dict = FAMILY_ANCHORS,
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
        if not isinstance(stacked_convs, int) or stacked_convs < 1:
            raise ValueError(f'DDODHead stacked_convs must be an int >= 1, got {stacked_convs!r}')
        settings = anchor_settings('DDODHead', num_classes, anchor_generator, bbox_coder,
                                   train_cfg, test_cfg, ('assigner', 'reg_assigner'))
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.train_cfg = settings.train_cfg
        # both needed by loss(); None without train_cfg
        self.assigner = settings.assigners['assigner']
        self.reg_assigner = settings.assigners['reg_assigner']
        self.test_cfg = settings.test_cfg
        self.prior_generator = settings.prior_generator
        self.bbox_coder = settings.bbox_coder
        self.loss_cls = build_loss(loss_cls)
        self.loss_bbox = build_loss(loss_bbox)
        self.loss_iou = build_loss(loss_iou)
        # MMDetection's module names and state-dict order: towers, output convs, scales
        self.cls_convs, self.reg_convs = anchor_towers(in_channels, feat_channels,
                                                       stacked_convs, conv_cfg, norm_cfg)
        num_anchors = self.prior_generator.num_base_priors[0]
        conv_args = (in_channels, feat_channels, stacked_convs)
        self.atss_cls = prediction_conv(*conv_args, num_anchors * num_classes)
        self.atss_reg = prediction_conv(*conv_args, num_anchors * 4)
        self.atss_iou = prediction_conv(*conv_args, num_anchors)
        self.scales = build_scales(self.prior_generator.num_levels)
        if use_dcn:  # the first conv of each tower samples at learned offsets
            # resolved in fcosdet's registry: builds whatever the default scope is
            dcn = resolve_conv_cfg(dict(type='DCN', deform_groups=1))
            for tower in (self.cls_convs, self.reg_convs):
                tower[0] = build_tower(in_channels, feat_channels, 1, norm_cfg=norm_cfg,
                                       conv_cfg=dcn)[0]
        # Positives per level, as MMDetection keeps them: summed over the whole life of the head
        # (never reset), both assignments adding to the same counts, local to each process (a
        # plain attribute: not in the state dict, not broadcast by DDP).
        self.cls_num_pos_samples_per_level = torch.zeros(self.prior_generator.num_levels,
                                                         dtype=torch.float64)

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
        flat_cls = flatten_levels(cls_scores)  # [N, R, C]
        flat_deltas = flatten_levels(bbox_preds)  # [N, R, 4]
        flat_iou = flatten_levels(iou_preds)[..., 0]  # [N, R]
        anchors = grid_priors_like(self.prior_generator, bbox_preds)
        num_level_anchors = [len(a) for a in anchors]
        # both assigners rate their candidates with the current predictions
        pred = dict(pred_scores=flat_cls.detach(),
                    pred_bboxes=self.bbox_coder.decode(torch.cat(anchors), flat_deltas.detach()))
        cls_targets = anchor_targets(self, cls_scores, batch_gt_instances, batch_img_metas,
                                     **pred)
        reg_targets = anchor_targets(self, cls_scores, batch_gt_instances, batch_img_metas,
                                     assigner=self.reg_assigner, **pred)

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
        return dense_predict(self, self.prediction_maps(cls_scores, bbox_preds, iou_preds),
                             batch_img_metas, cfg, rescale)

    def prediction_maps(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        iou_preds: list[Tensor]) -> PredictionMaps:
        """Class probabilities and, by name, the IoU logits, anchors and deltas
        :meth:`decode_candidates` reads (maps as from :meth:`forward`)."""
        anchors = grid_priors_like(self.prior_generator, bbox_preds)
        return PredictionMaps([s.sigmoid() for s in cls_scores],
                              dict(iou=iou_preds, anchors=anchors, deltas=bbox_preds))

    def decode_candidates(self, cls_prob: Tensor, picked: dict[str, Tensor], img_shapes: Tensor,
                          cfg: dict) -> tuple[Tensor, Tensor]:
        """ATSS's decoding and scoring with the IoU logit in the place of centre-ness: boxes
        ``[N, K, 4]`` clipped to ``img_shapes [N, 2]`` and scores cls·sigmoid(iou) ``[N, K]``
        from ``cls_prob [N, K]`` and the picked ``iou [N, K, 1]``, ``anchors [N, K, 4]`` and
        ``deltas [N, K, 4]``."""
        return decode_deltas_with_quality(self.bbox_coder, cls_prob, picked['iou'],
                                          picked['anchors'], picked['deltas'], img_shapes)
