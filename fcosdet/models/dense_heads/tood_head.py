"""TOOD head (Feng et al., ICCV 2021): one stack of task-interactive convs, per-task layer
attention (task decomposition), class scores aligned by a class-probability map and boxes aligned
by per-side deformable sampling, trained with ATSS assignment for ``initial_epoch`` epochs and
task-aligned assignment afterwards.

Shape letters: N images, L levels, R anchors (all levels), R_l anchors of level l, P positive
anchors of the batch, C classes (background is label C), S stacked convs, F feature channels,
K candidates, H_l/W_l map size.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import Scale
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.models.dense_heads.anchor_targets import (
    AnchorTargets,
    anchor_center,
    anchor_centerness,
    anchor_settings,
    anchor_targets,
    build_loss,
)
from fcosdet.models.dense_heads.atss_head import FAMILY_ANCHORS, GN
from fcosdet.models.dense_heads.base_dense_head import BaseDenseHead
from fcosdet.models.dense_heads.dense_postprocess import PredictionMaps, dense_predict
from fcosdet.models.dense_heads.dense_utils import (
    build_scales,
    build_tower,
    check_levels,
    flatten_levels,
    grid_priors_like,
    reduce_mean,
)
from fcosdet.models.layers import deform_sampling, resolve_conv_cfg
from fcosdet.models.layers.task_decomposition import TaskDecomposition
from fcosdet.models.task_modules.task_aligned_assigner import normalized_alignment
from fcosdet.registry import MODELS

ANCHOR_TYPES = ('anchor_free', 'anchor_based')
# train_cfg keys TOOD needs besides its two assigners
TOOD_TRAIN_KEYS = ('initial_epoch', 'alpha', 'beta')
PRIOR_PROB_BIAS = -4.59511985013459  # -log((1 - 0.01) / 0.01): class prior probability 0.01


def sigmoid_geometric_mean(x: Tensor, y: Tensor) -> Tensor:
    """``sqrt(sigmoid(x) · sigmoid(y))`` (broadcast), as ``exp((log σ(x) + log σ(y)) / 2)`` so
    the gradient stays finite where the product underflows to 0."""
    return torch.exp(0.5 * (F.logsigmoid(x) + F.logsigmoid(y)))


@MODELS.register_module()
class TOODHead(BaseDenseHead):
    """TOOD head with MMDetection's arguments, parameter names and outputs.

    Per level: S convs (``inter_convs``) whose outputs are stacked to ``[N, S·F, H_l, W_l]``;
    ``cls_decomp`` / ``reg_decomp`` reduce them per task; the class score is
    ``sqrt(σ(tood_cls) · σ(cls_prob_module))`` (a probability); the box is predicted at every
    anchor (distances ``Scale(exp(tood_reg))`` in strides from the anchor centre with
    ``anchor_type='anchor_free'``, deltas against the anchor with ``'anchor_based'``) and each
    side is then read at its own learned offset (``reg_offset_module``, 2 values per side).
    ``forward`` returns the probabilities and the boxes x1y1x2y2 divided by the level's stride
    (MMDetection's contract). Labels lie in [0, C); ``num_classes`` excludes background.

    Training: while the epoch is below ``initial_epoch`` (:meth:`in_warm_up`),
    ``initial_assigner`` (ATSS) and ``initial_loss_cls`` (focal loss on the probabilities), box
    loss weighted by the centre-ness target; afterwards ``assigner`` (``TaskAlignedAssigner``)
    and ``loss_cls`` (QFL) against the normalised alignment metric, which also weights the box
    loss. Both losses are normalised by the sum of their weights over the batch.

    Args:
        num_classes (int): C.
        in_channels (int): Channels of every input map.
        feat_channels (int): F, channels of the stacked convs.
        stacked_convs (int): S (TOOD's configs: 6).
        conv_cfg (dict | None): Conv config of the stacked convs.
        norm_cfg (dict | None): Norm of the stacked convs and of the reductions (GN 32).
        num_dcn (int): The first ``num_dcn`` stacked convs are ``DCNv2`` (4 deform groups).
        anchor_type (str): 'anchor_free' (MMDetection's default) or 'anchor_based'.
        anchor_generator, bbox_coder (dict): TASK_UTILS configs (the coder serves
            'anchor_based' only).
        initial_loss_cls, loss_cls, loss_bbox (dict): MODELS configs.
        train_cfg (dict | None): ``initial_epoch``, ``initial_assigner``, ``assigner``,
            ``alpha``, ``beta``, ``allowed_border``, ``pos_weight``, ``debug``.
        test_cfg (dict | None): ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``,
            ``min_bbox_size``.
        init_cfg (dict | list[dict] | None): None: TOOD's own initialisation
            (:meth:`init_weights`).
    """

    def __init__(self, num_classes: int, in_channels: int, feat_channels: int = 256,
                 stacked_convs: int = 4, conv_cfg: dict | None = None,
                 norm_cfg: dict | None = GN, num_dcn: int = 0,
                 anchor_type: str = 'anchor_free', anchor_generator: dict = FAMILY_ANCHORS,
                 bbox_coder: dict = dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                         target_stds=[0.1, 0.1, 0.2, 0.2]),
                 initial_loss_cls: dict = dict(type='FocalLoss', use_sigmoid=True,
                                               activated=True, gamma=2.0, alpha=0.25,
                                               loss_weight=1.0),
                 loss_cls: dict = dict(type='QualityFocalLoss', use_sigmoid=True,
                                       activated=True, beta=2.0, loss_weight=1.0),
                 loss_bbox: dict = dict(type='GIoULoss', loss_weight=2.0),
                 train_cfg: dict | None = None, test_cfg: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if anchor_type not in ANCHOR_TYPES:
            raise ValueError(f'TOODHead anchor_type must be one of {ANCHOR_TYPES}, got '
                             f'{anchor_type!r}')
        if not isinstance(stacked_convs, int) or stacked_convs < 1:
            raise ValueError(f'TOODHead stacked_convs must be an int >= 1, got {stacked_convs!r}')
        if not isinstance(num_dcn, int) or not 0 <= num_dcn <= stacked_convs:
            raise ValueError(f'TOODHead num_dcn must be an int in [0, stacked_convs], got '
                             f'{num_dcn!r}')
        self.anchor_type = anchor_type
        settings = anchor_settings('TOODHead', num_classes, anchor_generator, bbox_coder,
                                   train_cfg, test_cfg, ('initial_assigner', 'assigner'))
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.train_cfg = settings.train_cfg
        self.initial_assigner = settings.assigners['initial_assigner']
        self.assigner = settings.assigners['assigner']
        self.test_cfg = settings.test_cfg
        self.prior_generator = settings.prior_generator
        self.bbox_coder = settings.bbox_coder
        self.initial_loss_cls = build_loss(initial_loss_cls)
        self.loss_cls = build_loss(loss_cls)
        self.loss_bbox = build_loss(loss_bbox)
        if self.prior_generator.num_base_priors[0] != 1:
            raise ValueError('TOODHead needs one anchor per location, got anchor_generator '
                             f'with {self.prior_generator.num_base_priors[0]}')
        missing = [key for key in TOOD_TRAIN_KEYS if key not in self.train_cfg]
        if train_cfg is not None and missing:
            raise KeyError(f'TOODHead train_cfg: missing {missing}, got {train_cfg!r}')
        self.initial_epoch = self.train_cfg.get('initial_epoch', 0)
        self.epoch: int | None = None  # None: the runner's epoch (see in_warm_up)
        self._init_layers(stacked_convs, conv_cfg, norm_cfg, num_dcn)

    def _init_layers(self, stacked_convs: int, conv_cfg: dict | None, norm_cfg: dict | None,
                     num_dcn: int) -> None:
        """The modules, in MMDetection's state-dict order."""
        feat, stacked = self.feat_channels, self.feat_channels * stacked_convs
        self.inter_convs = build_tower(self.in_channels, feat, stacked_convs, norm_cfg=norm_cfg,
                                       conv_cfg=conv_cfg)
        dcn = resolve_conv_cfg(dict(type='DCNv2', deform_groups=4))
        for i in range(num_dcn):
            self.inter_convs[i] = build_tower(self.in_channels if i == 0 else feat, feat, 1,
                                              norm_cfg=norm_cfg, conv_cfg=dcn)[0]
        self.cls_decomp = TaskDecomposition(feat, stacked_convs, stacked_convs * 8, conv_cfg,
                                            norm_cfg)
        self.reg_decomp = TaskDecomposition(feat, stacked_convs, stacked_convs * 8, conv_cfg,
                                            norm_cfg)
        self.tood_cls = nn.Conv2d(feat, self.num_classes, 3, padding=1)
        self.tood_reg = nn.Conv2d(feat, 4, 3, padding=1)
        self.cls_prob_module = nn.Sequential(nn.Conv2d(stacked, feat // 4, 1), nn.ReLU(True),
                                             nn.Conv2d(feat // 4, 1, 3, padding=1))
        self.reg_offset_module = nn.Sequential(nn.Conv2d(stacked, feat // 4, 1), nn.ReLU(True),
                                               nn.Conv2d(feat // 4, 4 * 2, 3, padding=1))
        self.scales = build_scales(self.prior_generator.num_levels)

    def init_weights(self) -> None:
        """TOOD's initialisation (``init_cfg`` None): N(0, 0.01) stacked convs and outputs,
        N(0, 0.001) offset branch, zero biases except the two class branches (prior 0.01)."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        for conv, std, bias in [*((m.conv, 0.01, 0.0) for m in self.inter_convs),
                                (self.cls_prob_module[0], 0.01, 0.0),
                                (self.cls_prob_module[2], 0.01, PRIOR_PROB_BIAS),
                                (self.reg_offset_module[0], 0.001, 0.0),
                                (self.reg_offset_module[2], 0.001, 0.0),
                                (self.tood_cls, 0.01, PRIOR_PROB_BIAS), (self.tood_reg, 0.01, 0.0)]:
            nn.init.normal_(conv.weight, 0, std)
            if conv.bias is not None:
                nn.init.constant_(conv.bias, bias)
        self.cls_decomp.init_weights()
        self.reg_decomp.init_weights()

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: class probabilities ``[N, C, H_l, W_l]`` and boxes x1y1x2y2 in units of
        the level's stride ``[N, 4, H_l, W_l]``, from L maps ``[N, in_channels, H_l, W_l]``."""
        check_levels(x, len(self.scales), 'TOODHead')
        anchors = grid_priors_like(self.prior_generator, list(x))
        outs = [self._forward_level(feat, level, anchor)
                for level, (feat, anchor) in enumerate(zip(x, anchors))]
        cls_scores, bbox_preds = (list(o) for o in zip(*outs))
        return cls_scores, bbox_preds

    def _forward_level(self, x: Tensor, level: int, anchors: Tensor) -> tuple[Tensor, Tensor]:
        """Aligned probabilities ``[N, C, H_l, W_l]`` and boxes ``[N, 4, H_l, W_l]`` (strides)
        of one level from its map ``x`` and anchors ``[R_l, 4]``."""
        inter_feats = []
        for conv in self.inter_convs:
            x = conv(x)
            inter_feats.append(x)
        feat = torch.cat(inter_feats, dim=1)  # [N, S·F, H_l, W_l]
        avg_feat = feat.mean(dim=(2, 3), keepdim=True)
        cls_score = sigmoid_geometric_mean(self.tood_cls(self.cls_decomp(feat, avg_feat)),
                                           self.cls_prob_module(feat))
        reg_box = self._boxes_at_anchors(self.reg_decomp(feat, avg_feat), level, anchors)
        bbox_pred = deform_sampling(reg_box, self.reg_offset_module(feat).to(reg_box.dtype))
        # A sampled box whose sides crossed (x1 > x2 or y1 > y2) keeps the unsampled one, as
        # MMDetection does: GIoU of an inverted box is meaningless.
        crossed = (bbox_pred[:, 0] > bbox_pred[:, 2]) | (bbox_pred[:, 1] > bbox_pred[:, 3])
        return cls_score, torch.where(crossed[:, None], reg_box, bbox_pred)

    def _boxes_at_anchors(self, reg_feat: Tensor, level: int, anchors: Tensor) -> Tensor:
        """Boxes ``[N, 4, H_l, W_l]`` in strides predicted at each anchor from the regression
        features ``[N, F, H_l, W_l]`` (before the alignment)."""
        num_images, _, height, width = reg_feat.shape
        stride = self.prior_generator.strides[level][0]
        scale: Scale = self.scales[level]
        if self.anchor_type == 'anchor_free':
            dist = scale(self.tood_reg(reg_feat).exp()).float()  # (l, t, r, b) in strides
            centre = anchor_center(anchors).float().T.reshape(1, 2, height, width) / stride
            return torch.cat([centre - dist[:, :2], centre + dist[:, 2:]], dim=1)
        deltas = scale(self.tood_reg(reg_feat)).float().permute(0, 2, 3, 1)
        boxes = self.bbox_coder.decode(anchors.float().reshape(1, height, width, 4), deltas)
        return boxes.permute(0, 3, 1, 2) / stride

    def in_warm_up(self) -> bool:
        """Whether the current epoch is below ``initial_epoch``.

        The epoch is ``self.epoch`` when set (``SetEpochInfoHook``, or by hand), else the
        runner's 0-based epoch from mmengine's current ``MessageHub`` (``'epoch'``, kept up to
        date by the runner's ``RuntimeInfoHook``), which is where MMDetection 3.3's TOOD reads
        it; 0 outside a runner. (A second runner of the same experiment name built in the same
        second of one process reuses the first one's hub, which is then not the current one:
        use ``SetEpochInfoHook`` there.)
        """
        epoch = self.epoch
        if epoch is None:
            epoch = MessageHub.get_current_instance().get_info('epoch', 0)
        return epoch < self.initial_epoch

    def get_targets(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                    batch_gt_instances: list[InstanceData],
                    batch_img_metas: list[dict]) -> tuple[AnchorTargets, Tensor]:
        """Assignment of the current phase and the soft target of every anchor.

        Args:
            cls_scores, bbox_preds (list[Tensor]): As from :meth:`forward`.
            batch_gt_instances (list[InstanceData]): N gt sets (``bboxes``, ``labels``).
            batch_img_metas (list[dict]): N metas with ``pad_shape``.

        Returns:
            tuple[AnchorTargets, Tensor]: the targets and ``[N, R]`` alignment targets: 1 at
            the positives during warm-up (MMDetection's box weights), the normalised
            metric ``t / max t · max u`` per gt afterwards; 0 for background.
        """
        if self.in_warm_up():
            targets = anchor_targets(self, cls_scores, batch_gt_instances, batch_img_metas,
                                     assigner=self.initial_assigner)
            return targets, targets.assign.pos_mask.to(cls_scores[0].dtype)
        pixel_boxes = flatten_levels([pred.detach() * stride[0] for pred, stride in
                                      zip(bbox_preds, self.prior_generator.strides)])
        targets = anchor_targets(self, cls_scores, batch_gt_instances, batch_img_metas,
                                 pred_scores=flatten_levels(cls_scores).detach(),
                                 pred_bboxes=pixel_boxes, alpha=self.train_cfg['alpha'],
                                 beta=self.train_cfg['beta'])
        assign = targets.assign
        return targets, normalized_alignment(assign.gt_inds, assign.assign_metrics,
                                             assign.max_overlaps)

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     batch_gt_instances: list[InstanceData], batch_img_metas: list[dict],
                     batch_gt_instances_ignore: list[InstanceData] | None = None
                     ) -> dict[str, Tensor]:
        """Classification and GIoU losses over all anchors of the batch (boxes in strides).

        Per-level terms are summed (MMDetection returns one entry per level; the runner sums
        them to the same value). Ignored instances are not used.

        Args:
            cls_scores, bbox_preds (list[Tensor]): As from :meth:`forward`.
            batch_gt_instances (list[InstanceData]): N gt sets (``bboxes``, ``labels``).
            batch_img_metas (list[dict]): N metas with ``pad_shape``.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``.
        """
        check_levels(bbox_preds, len(self.scales), 'TOODHead.loss_by_feat')
        targets, alignment = self.get_targets(cls_scores, bbox_preds, batch_gt_instances,
                                              batch_img_metas)
        labels, pos_mask = targets.assign.labels, targets.assign.pos_mask  # [N, R]
        flat_cls = flatten_levels(cls_scores).reshape(-1, self.num_classes)  # [N·R, C]
        flat_box = flatten_levels(bbox_preds)  # [N, R, 4]
        warm_up = self.in_warm_up()
        cls_target = labels.reshape(-1)
        if not warm_up:
            cls_target = (cls_target, alignment.reshape(-1))
        loss_fn = self.initial_loss_cls if warm_up else self.loss_cls
        loss_cls = loss_fn(flat_cls, cls_target, targets.label_weights.reshape(-1),
                           avg_factor=1.0)
        pos_anchors = targets.flat_anchors.expand(*labels.shape, 4)[pos_mask]  # [P, 4]
        pos_gt = targets.assign.bbox_targets[pos_mask]
        weight = anchor_centerness(pos_anchors, pos_gt) if warm_up else alignment[pos_mask]
        # Every rank joins the all-reduces, also with no positives.
        cls_avg_factor = float(reduce_mean(alignment.sum()).clamp(min=1))
        bbox_avg_factor = float(reduce_mean(weight.sum()).clamp(min=1))
        if not bool(pos_mask.any()):
            # Exact zero that keeps every prediction in the graph (DDP needs used params).
            return dict(loss_cls=loss_cls / cls_avg_factor, loss_bbox=flat_box.sum() * 0)
        pos_strides = targets.strides.expand_as(labels)[pos_mask][:, None]  # [P, 1]
        loss_bbox = self.loss_bbox(flat_box[pos_mask], pos_gt / pos_strides, weight=weight,
                                   avg_factor=1.0)
        return dict(loss_cls=loss_cls / cls_avg_factor, loss_bbox=loss_bbox / bbox_avg_factor)

    def predict_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        batch_img_metas: list[dict], cfg: dict | None = None,
                        rescale: bool = False) -> list[InstanceData]:
        """Detections scored by the aligned probabilities, boxes the aligned predictions times
        the stride (not clipped to the image, as MMDetection's TOOD), batched over images. The
        maps are :meth:`forward`'s; the other arguments and the result (N ``InstanceData``
        with ``bboxes [K, 4]``, ``scores [K]``, ``labels [K]``) are :func:`dense_predict`'s."""
        check_levels(bbox_preds, len(self.scales), 'TOODHead.predict_by_feat')
        return dense_predict(self, self.prediction_maps(cls_scores, bbox_preds),
                             batch_img_metas, cfg, rescale)

    def prediction_maps(self, cls_scores: list[Tensor],
                        bbox_preds: list[Tensor]) -> PredictionMaps:
        """The aligned probabilities (already probabilities) and, by name, the aligned boxes
        in pixels (:meth:`forward`'s boxes × stride) :meth:`decode_candidates` reads."""
        pixel_boxes = [pred * stride[0] for pred, stride in
                       zip(bbox_preds, self.prior_generator.strides)]
        return PredictionMaps(cls_scores, dict(boxes=pixel_boxes))

    def decode_candidates(self, cls_prob: Tensor, picked: dict[str, Tensor], img_shapes: Tensor,
                          cfg: dict) -> tuple[Tensor, Tensor]:
        """The picked ``boxes [N, K, 4]`` (already decoded, not clipped, as MMDetection's TOOD)
        and ``cls_prob [N, K]`` as they are; ``img_shapes`` and ``cfg`` are not used."""
        return picked['boxes'], cls_prob
