"""Batched post-processing shared by the dense heads: test_cfg checking, per-level top-k
candidate selection, the head's own decoding, rescaling, size filtering and class-aware NMS.

A head takes part through two methods (the PyTorch predict path and the end-to-end ONNX graph
of :mod:`fcosdet.deployment` call the same ones):

- ``prediction_maps(*head_outputs) -> PredictionMaps``: per level class probabilities and the
  named maps / priors its decoding reads;
- ``decode_candidates(cls_prob, picked, img_shapes, cfg) -> (boxes, scores)``: the boxes
  (clipped where the head clips) and final scores of the kept candidates, ``picked`` holding
  each named value at the candidates.

Shape letters: N images, L levels, R_l points of level l, C classes, D values per point,
k candidates kept on one level, K candidates of all levels (or detections after NMS).
"""
import copy
from typing import NamedTuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.models.dense_heads.dense_utils import flatten_levels, metas_tensor
from fcosdet.models.layers.nms import batched_nms

# MMDetection's test_cfg keys of the dense heads (values: its usual defaults).
DENSE_TEST_CFG = dict(nms_pre=1000, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=100, min_bbox_size=0)


class PredictionMaps(NamedTuple):
    """What a head's post-processing reads, per level, by name.

    Attributes:
        cls_probs (list[Tensor]): Per level class probabilities ``[N, C, H_l, W_l]``.
        extras (dict[str, list[Tensor]]): Name -> per level maps ``[N, D, H_l, W_l]`` (per
            image) or priors ``[R_l, D]`` (shared); the values at the candidates reach the
            head's ``decode_candidates`` under the same name, ``[N, K, D]``.
    """

    cls_probs: list[Tensor]
    extras: dict[str, list[Tensor]]


class Candidates(NamedTuple):
    """The decoded candidates of a batch, before size filtering and NMS.

    Attributes:
        boxes (Tensor): ``[N, K, 4]`` x1y1x2y2 in the resized image's pixels.
        scores (Tensor): ``[N, K]`` final scores.
        labels (Tensor): Long ``[N, K]``.
        valid (Tensor): Bool ``[N, K]``, False for padding slots.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    valid: Tensor


def check_test_cfg(test_cfg: dict | None, base: dict, owner: str) -> dict:
    """Merge ``test_cfg`` over a copy of ``base``, rejecting unknown keys and a malformed
    ``nms`` early.

    Args:
        test_cfg (dict | None): User values (not mutated).
        base (dict): Defaults; its keys are the only accepted ones.
        owner (str): Head name used in error messages.

    Returns:
        dict: The merged config.
    """
    cfg = copy.deepcopy(base)
    for key, value in (test_cfg or {}).items():
        if key not in cfg:
            raise KeyError(f'{owner} test_cfg: unknown key {key!r}; expected one of '
                           f'{sorted(cfg)}')
        cfg[key] = copy.deepcopy(value)
    nms_cfg = cfg['nms']
    if (not isinstance(nms_cfg, dict) or nms_cfg.get('type', 'nms') != 'nms'
            or 'iou_threshold' not in nms_cfg):
        raise ValueError(f"{owner} test_cfg['nms'] must be dict(type='nms', iou_threshold=...), "
                         f'got {nms_cfg!r}')
    return cfg


def capped_size(size: int | Tensor, cap: int) -> int | Tensor:
    """``min(size, cap)``; a traced size (a 0-dim Tensor while exporting) stays a graph value,
    so an exported top-k follows the input size instead of the traced one."""
    if isinstance(size, Tensor):
        return size.clamp(max=cap)
    return min(cap, size)


def select_level_candidates(scores: Tensor, score_thr: float,
                            nms_pre: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Keep the best (point, class) pairs of one level for every image at once.

    A pair is a candidate when its class probability exceeds ``score_thr``; of those, at most
    ``nms_pre`` with the highest probability are kept per image.

    Args:
        scores (Tensor): Class probabilities of one level, ``[N, R_l, C]``.
        score_thr (float): Probabilities must be strictly greater than this.
        nms_pre (int): Candidates kept per image on this level; ``-1`` (or any value < 1)
            keeps every pair above the threshold.

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: ``top_scores [N, k]`` probabilities,
        ``point_idx [N, k]`` long indices into the level's points, ``labels [N, k]`` long
        class indices and ``valid [N, k]`` bool, False for slots that did not pass the
        threshold (when fewer than k pairs did).
    """
    num_images, _, num_classes = scores.shape
    flat = scores.reshape(num_images, -1)
    k = flat.shape[1] if nms_pre < 1 else capped_size(flat.shape[1], nms_pre)
    # Pairs below the threshold get -1 so topk prefers every real candidate over them.
    masked = torch.where(flat > score_thr, flat, flat.new_full((), -1.0))
    top_scores, top_idx = masked.topk(k, dim=1)
    valid = top_scores > score_thr
    return top_scores, top_idx // num_classes, top_idx % num_classes, valid


def topk_candidates(cls_probs: list[Tensor], extras: list[list[Tensor]], score_thr: float,
                    nms_pre: int) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """Per level, the best (point, class) pairs of every image, and what goes with them.

    Args:
        cls_probs (list[Tensor]): Per level class probabilities ``[N, C, H_l, W_l]``.
        extras (list[list[Tensor]]): Per level, the values picked at the kept points: maps
            ``[N, D, H_l, W_l]`` (per image) or priors ``[R_l, D]`` (shared by all images).
            Every level lists the same kinds in the same order.
        score_thr (float): Probabilities must be strictly greater than this.
        nms_pre (int): Candidates kept per image and level (< 1 keeps all above threshold).

    Returns:
        tuple[Tensor, Tensor, Tensor, list[Tensor]]: ``scores [N, K]``, ``labels [N, K]``,
        ``valid [N, K]`` (False for padding slots) and, per kind of ``extras``, the picked
        values ``[N, K, D]``; levels concatenated in order.
    """
    parts = []
    for probs, level_extras in zip(cls_probs, extras):
        scores, point_idx, labels, valid = select_level_candidates(
            flatten_levels([probs]), score_thr, nms_pre)
        picked = []
        for extra in level_extras:
            if extra.dim() == 2:  # shared priors [R_l, D]
                picked.append(extra[point_idx])
            else:
                flat = flatten_levels([extra])
                picked.append(flat.gather(1, point_idx[..., None].expand(-1, -1, flat.shape[2])))
        parts.append((scores, labels, valid, *picked))
    scores, labels, valid, *picked = (torch.cat(level_parts, dim=1) for level_parts in zip(*parts))
    return scores, labels, valid, picked


def finish_detections(boxes: Tensor, scores: Tensor, labels: Tensor, valid: Tensor,
                      batch_img_metas: list[dict], cfg: dict, rescale: bool,
                      num_classes: int, owner: str) -> list[InstanceData]:
    """Rescale to the original image, drop small boxes, class-aware NMS (MMDetection's
    ``_bbox_post_process`` order), batched over the images.

    Args:
        boxes (Tensor): Decoded (and clipped) candidate boxes ``[N, K, 4]``.
        scores (Tensor): Final candidate scores ``[N, K]``.
        labels (Tensor): Long ``[N, K]``.
        valid (Tensor): Bool ``[N, K]``.
        batch_img_metas (list[dict]): N metas (``scale_factor`` when ``rescale``).
        cfg (dict): Checked test_cfg (``min_bbox_size``, ``nms``, ``max_per_img``).
        rescale (bool): Divide boxes by ``scale_factor`` (w, h, w, h).
        num_classes (int): C.
        owner (str): Head name used in error messages.

    Returns:
        list[InstanceData]: N results, ``bboxes [K_n, 4]``, ``scores [K_n]``, ``labels [K_n]``.
    """
    if rescale:
        scale_factor = metas_tensor(batch_img_metas, 'scale_factor', boxes, owner)
        boxes = boxes / scale_factor[:, None, :2].repeat(1, 1, 2)
    if cfg['min_bbox_size'] >= 0:
        wh = boxes[..., 2:] - boxes[..., :2]
        valid = valid & (wh > cfg['min_bbox_size']).all(dim=-1)
    return nms_per_image(boxes, scores, labels, valid, num_classes,
                         cfg['nms']['iou_threshold'], cfg['max_per_img'])


def dense_candidates(head: object, maps: PredictionMaps, img_shapes: Tensor,
                     cfg: dict) -> Candidates:
    """Per level top-k candidates (:func:`topk_candidates`) decoded by the head.

    Args:
        head (object): The head (its ``decode_candidates``).
        maps (PredictionMaps): From the head's ``prediction_maps``.
        img_shapes (Tensor): ``[N, 2]`` (h, w) of the resized images (before padding).
        cfg (dict): Checked test_cfg (``score_thr``, ``nms_pre`` and the head's own keys).

    Returns:
        Candidates: ``[N, K, ...]`` boxes, scores, labels and valid flags.
    """
    names = list(maps.extras)
    per_level = [list(level) for level in zip(*maps.extras.values())]
    scores, labels, valid, picked = topk_candidates(maps.cls_probs, per_level, cfg['score_thr'],
                                                    cfg['nms_pre'])
    boxes, scores = head.decode_candidates(scores, dict(zip(names, picked, strict=True)),
                                           img_shapes, cfg)
    return Candidates(boxes, scores, labels, valid)


def dense_predict(head: object, maps: PredictionMaps, batch_img_metas: list[dict],
                  cfg: dict | None = None, rescale: bool = False) -> list[InstanceData]:
    """The whole batched ``predict_by_feat`` of a dense head, around its own decoding.

    :func:`dense_candidates`, then :func:`finish_detections`.

    Args:
        head (object): The head (``test_cfg``, ``num_classes``, ``decode_candidates``; its
            class name is used in error messages).
        maps (PredictionMaps): From the head's ``prediction_maps``.
        batch_img_metas (list[dict]): N metas with ``img_shape`` (``scale_factor`` when
            ``rescale``).
        cfg (dict | None): Keys overriding ``head.test_cfg`` for this call.
        rescale (bool): Return boxes in original-image pixels.

    Returns:
        list[InstanceData]: N results, ``bboxes [K, 4]``, ``scores [K]``, ``labels [K]``.
    """
    owner = f'{type(head).__name__}.predict_by_feat'
    cfg = head.test_cfg if cfg is None else check_test_cfg(cfg, head.test_cfg, owner)
    img_shapes = metas_tensor(batch_img_metas, 'img_shape', maps.cls_probs[0], owner)[:, :2]
    boxes, scores, labels, valid = dense_candidates(head, maps, img_shapes, cfg)
    return finish_detections(boxes, scores, labels, valid, batch_img_metas, cfg, rescale,
                             head.num_classes, owner)


def rank_within_groups(groups: Tensor) -> Tensor:
    """Position of every element among the elements of its group, in the given order.

    Args:
        groups (Tensor): Long group index of each element, ``[K]``.

    Returns:
        Tensor: Long ``[K]``: 0 for the first element of each group, 1 for the second, ...
    """
    order = torch.sort(groups, stable=True).indices
    sorted_groups = groups[order]
    positions = torch.arange(groups.numel(), device=groups.device)
    is_start = torch.ones_like(sorted_groups, dtype=torch.bool)
    is_start[1:] = sorted_groups[1:] != sorted_groups[:-1]
    # Index (in sorted order) of each group's first element, propagated with a running max.
    group_start = torch.cummax(torch.where(is_start, positions, 0), dim=0).values
    ranks = torch.empty_like(groups)
    ranks[order] = positions - group_start
    return ranks


def nms_per_image(boxes: Tensor, scores: Tensor, labels: Tensor, valid: Tensor,
                  num_classes: int, iou_threshold: float,
                  max_per_img: int) -> list[InstanceData]:
    """Class-aware NMS over a whole batch with one :func:`batched_nms` call.

    Every (image, class) pair is its own NMS group, so boxes of different images or classes
    never suppress each other.

    Args:
        boxes (Tensor): Candidate boxes, ``[N, K, 4]`` x1y1x2y2.
        scores (Tensor): Detection scores, ``[N, K]``.
        labels (Tensor): Long class indices, ``[N, K]``.
        valid (Tensor): Bool ``[N, K]``; invalid slots are dropped before NMS.
        num_classes (int): C, used to build the (image, class) group index.
        iou_threshold (float): A box is suppressed when its IoU with a kept, higher-scoring
            box of its group exceeds this.
        max_per_img (int): Detections kept per image (highest scores first); < 1 keeps all.

    Returns:
        list[InstanceData]: N results with ``bboxes [K_n, 4]``, ``scores [K_n]``,
        ``labels [K_n]`` sorted by decreasing score.
    """
    num_images = boxes.shape[0]
    img_idx = torch.arange(num_images, device=boxes.device)[:, None].expand_as(labels)
    flat_boxes, flat_scores = boxes[valid], scores[valid]
    flat_labels, flat_imgs = labels[valid], img_idx[valid]
    keep = batched_nms(flat_boxes, flat_scores, flat_imgs * num_classes + flat_labels,
                       iou_threshold)
    if max_per_img > 0:
        keep = keep[rank_within_groups(flat_imgs[keep]) < max_per_img]
    # Group the kept detections image by image, keeping the decreasing-score order.
    keep = keep[torch.sort(flat_imgs[keep], stable=True).indices]
    counts = torch.bincount(flat_imgs[keep], minlength=num_images).tolist()
    results = []
    for img_boxes, img_scores, img_labels in zip(flat_boxes[keep].split(counts),
                                                 flat_scores[keep].split(counts),
                                                 flat_labels[keep].split(counts)):
        results.append(InstanceData(bboxes=img_boxes, scores=img_scores, labels=img_labels))
    return results


def decode_deltas_with_quality(bbox_coder: object, cls_prob: Tensor, quality_logit: Tensor,
                               anchors: Tensor, deltas: Tensor,
                               img_shapes: Tensor) -> tuple[Tensor, Tensor]:
    """Boxes from anchor deltas clipped to the images, scored ``cls · sigmoid(quality)``: the
    decoding of ATSS (quality = centre-ness) and DDOD (quality = IoU logit).

    Args:
        bbox_coder (object): ``DeltaXYWHBBoxCoder``-like (``decode(anchors, deltas, max_shape)``).
        cls_prob (Tensor): ``[N, K]`` class probabilities of the candidates.
        quality_logit (Tensor): ``[N, K, 1]`` logits.
        anchors (Tensor): ``[N, K, 4]``.
        deltas (Tensor): ``[N, K, 4]``.
        img_shapes (Tensor): ``[N, 2]`` (h, w).

    Returns:
        tuple[Tensor, Tensor]: boxes ``[N, K, 4]`` and scores ``[N, K]``.
    """
    boxes = bbox_coder.decode(anchors, deltas, max_shape=img_shapes)
    return boxes, cls_prob * quality_logit[..., 0].sigmoid()
