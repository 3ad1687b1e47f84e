"""ATSS head (Zhang et al., CVPR 2020): FCOS-like towers on one square anchor per point, box
deltas against the anchor, centre-ness, and adaptive training sample selection.

Shape letters: N images, L levels, R anchors (all levels), R_l anchors of level l, P positive
anchors of the batch, C classes (background is label C), K candidates, H_l/W_l map size.
"""

from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.models.dense_heads.anchor_targets import (
    anchor_centerness,
    anchor_settings,
    anchor_targets,
    anchor_towers,
    build_loss,
    prediction_conv,
)
from fcosdet.models.dense_heads.base_dense_head import BaseDenseHead
from fcosdet.models.dense_heads.dense_postprocess import (
    PredictionMaps,
    decode_deltas_with_quality,
    dense_predict,
)
from fcosdet.models.dense_heads.dense_utils import (
    build_scales,
    check_levels,
    flatten_levels,
    grid_priors_like,
    head_init_cfg,
    reduce_mean,
)
from fcosdet.registry import MODELS

GN = dict(type='GN', num_groups=32, requires_grad=True)
FAMILY_ANCHORS = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8,
                      scales_per_octave=1, strides=[8, 16, 32, 64, 128])


@MODELS.register_module()
class ATSSHead(BaseDenseHead):
    """ATSS head with MMDetection's arguments, parameter names and outputs.

    Boxes are absolute-pixel x1y1x2y2; labels lie in [0, C) and ``num_classes`` excludes
    background. Training needs ``train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9),
    allowed_border=-1, pos_weight=-1, debug=False)`` (the detector passes ``model.train_cfg``).

    Args:
        num_classes (int): C.
        in_channels (int): Channels of every input map.
        pred_kernel_size (int): Kernel of the three output convs.
        stacked_convs (int): Convs per tower.
        feat_channels (int): Channels of the tower convs.
        conv_cfg (dict | None): Conv config of the towers.
        norm_cfg (dict | None): Norm of the towers (GN 32 by default).
        reg_decoded_bbox (bool): Must be True: the box loss compares decoded boxes.
        anchor_generator, bbox_coder (dict): TASK_UTILS configs.
        loss_cls, loss_bbox, loss_centerness (dict): MODELS configs.
        train_cfg (dict | None): See above; None for inference-only models.
        test_cfg (dict | None): ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``,
            ``min_bbox_size``.
        init_cfg (dict | list[dict] | None): Default N(0, 0.01), ``atss_cls`` bias prior 0.01.
    """

    def __init__(self, num_classes: int, in_channels: int, pred_kernel_size: int = 3,
                 stacked_convs: int = 4, feat_channels: int = 256,
                 conv_cfg: dict | None = None, norm_cfg: dict | None = GN,
                 reg_decoded_bbox: bool = True,
                 anchor_generator: dict = FAMILY_ANCHORS,
                 bbox_coder: dict = dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                         target_stds=[0.1, 0.1, 0.2, 0.2]),
                 loss_cls: dict = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                       alpha=0.25, loss_weight=1.0),
                 loss_bbox: dict = dict(type='GIoULoss', loss_weight=2.0),
                 loss_centerness: dict = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                              loss_weight=1.0),
                 train_cfg: dict | None = None, test_cfg: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=head_init_cfg('atss_cls') if init_cfg is None else init_cfg)
        if not reg_decoded_bbox:
            raise ValueError('ATSSHead: only reg_decoded_bbox=True is supported, got False')
        settings = anchor_settings('ATSSHead', num_classes, anchor_generator, bbox_coder,
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
        self.loss_centerness = build_loss(loss_centerness)
        # MMDetection's module names and state-dict order: towers, output convs, scales
        self.cls_convs, self.reg_convs = anchor_towers(in_channels, feat_channels,
                                                       stacked_convs, conv_cfg, norm_cfg)
        num_anchors = self.prior_generator.num_base_priors[0]
        conv_args = (in_channels, feat_channels, stacked_convs)
        self.atss_cls = prediction_conv(*conv_args, num_anchors * num_classes, pred_kernel_size)
        self.atss_reg = prediction_conv(*conv_args, num_anchors * 4, pred_kernel_size)
        self.atss_centerness = prediction_conv(*conv_args, num_anchors, pred_kernel_size)
        self.scales = build_scales(self.prior_generator.num_levels)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per level: class logits ``[N, C, H_l, W_l]``, box deltas ``[N, 4, H_l, W_l]``
        (scaled per level) and centre-ness logits ``[N, 1, H_l, W_l]``, from L maps
        ``[N, in_channels, H_l, W_l]``."""
        cls_scores, bbox_preds, centernesses = [], [], []
        check_levels(x, len(self.scales), 'ATSSHead')
        for feat, scale in zip(x, self.scales):
            cls_feat, reg_feat = self.cls_convs(feat), self.reg_convs(feat)
            cls_scores.append(self.atss_cls(cls_feat))
            bbox_preds.append(scale(self.atss_reg(reg_feat)).float())
            centernesses.append(self.atss_centerness(reg_feat))
        return cls_scores, bbox_preds, centernesses

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     centernesses: list[Tensor], batch_gt_instances: list[InstanceData],
                     batch_img_metas: list[dict],
                     batch_gt_instances_ignore: list[InstanceData] | None = None
                     ) -> dict[str, Tensor]:
        """Focal, GIoU and centre-ness losses over all anchors of the batch.

        Per-level terms are summed (MMDetection returns one entry per level; the runner sums
        them to the same value). Ignored instances are not used.

        Args:
            cls_scores, bbox_preds, centernesses (list[Tensor]): As from :meth:`forward`.
            batch_gt_instances (list[InstanceData]): N gt sets (``bboxes``, ``labels``).
            batch_img_metas (list[dict]): N metas with ``pad_shape``.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_centerness``.
        """
        targets = anchor_targets(self, cls_scores, batch_gt_instances, batch_img_metas)
        labels, pos_mask = targets.assign.labels, targets.assign.pos_mask  # [N, R]
        flat_bbox = flatten_levels(bbox_preds)  # [N, R, 4]
        flat_ctr = flatten_levels(centernesses)[..., 0]  # [N, R]
        loss_cls = self.loss_cls(flatten_levels(cls_scores).reshape(-1, self.num_classes),
                                 labels.reshape(-1), targets.label_weights.reshape(-1),
                                 avg_factor=targets.avg_factor)

        pos_anchors = targets.flat_anchors.expand_as(flat_bbox)[pos_mask]  # [P, 4]
        pos_gt = targets.assign.bbox_targets[pos_mask]
        ctr_targets = anchor_centerness(pos_anchors, pos_gt)  # [P]
        # Every rank joins the all-reduce, also with no positives.
        bbox_avg_factor = float(reduce_mean(ctr_targets.sum()).clamp(min=1))
        if not bool(pos_mask.any()):
            # Exact zeros that keep every prediction in the graph (DDP needs used params).
            return dict(loss_cls=loss_cls, loss_bbox=flat_bbox.sum() * 0,
                        loss_centerness=flat_ctr.sum() * 0)
        pos_decoded = self.bbox_coder.decode(pos_anchors, flat_bbox[pos_mask])
        loss_bbox = self.loss_bbox(pos_decoded, pos_gt, weight=ctr_targets, avg_factor=1.0)
        loss_centerness = self.loss_centerness(flat_ctr[pos_mask], ctr_targets,
                                               avg_factor=targets.avg_factor)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox / bbox_avg_factor,
                    loss_centerness=loss_centerness)

    def predict_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        centernesses: list[Tensor], batch_img_metas: list[dict],
                        cfg: dict | None = None, rescale: bool = False) -> list[InstanceData]:
        """Detections scored ``sigmoid(cls) · sigmoid(centre-ness)``, batched over images.
        The maps are :meth:`forward`'s; the other arguments and the result (N ``InstanceData``
        with ``bboxes [K, 4]``, ``scores [K]``, ``labels [K]``) are :func:`dense_predict`'s."""
        return dense_predict(self, self.prediction_maps(cls_scores, bbox_preds, centernesses),
                             batch_img_metas, cfg, rescale)

    def prediction_maps(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        centernesses: list[Tensor]) -> PredictionMaps:
        """Class probabilities and, by name, the centre-ness logits, anchors and deltas
        :meth:`decode_candidates` reads (maps as from :meth:`forward`)."""
        anchors = grid_priors_like(self.prior_generator, bbox_preds)
        return PredictionMaps([s.sigmoid() for s in cls_scores],
                              dict(centerness=centernesses, anchors=anchors, deltas=bbox_preds))

    def decode_candidates(self, cls_prob: Tensor, picked: dict[str, Tensor], img_shapes: Tensor,
                          cfg: dict) -> tuple[Tensor, Tensor]:
        """Candidate boxes ``[N, K, 4]`` clipped to ``img_shapes [N, 2]`` and scores
        cls·sigmoid(ctr) ``[N, K]``, from ``cls_prob [N, K]`` and the picked ``centerness``
        logits ``[N, K, 1]``, ``anchors [N, K, 4]`` and ``deltas [N, K, 4]``."""
        return decode_deltas_with_quality(self.bbox_coder, cls_prob, picked['centerness'],
                                          picked['anchors'], picked['deltas'], img_shapes)
