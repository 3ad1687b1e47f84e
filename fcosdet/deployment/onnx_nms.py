"""Class-aware NMS with a fixed-size padded result, exportable as ONNX ``NonMaxSuppression``.

``fcosdet::nms_indices`` is a PyTorch custom op whose eager kernel runs fcosdet's exact NMS per
(image, class) and whose TorchScript-exporter symbolic emits the standard ONNX
``NonMaxSuppression`` (opset 11+), so the exported graph needs no custom-op library.
:func:`padded_detections` turns decoded candidates into the ``dets [N, P, 4]``,
``scores [N, P]``, ``labels [N, P]``, ``num_dets [N]`` form (TensorRT's EfficientNMS layout)
with shape-independent tensor operations only.

Shape letters: N images, C classes, K candidates per image, M selected (image, class, box)
triples, P = ``max_per_img`` output rows per image.
"""
import functools

import torch
from torch import Tensor

from fcosdet.models.layers.nms import nms

OP_NAME = 'fcosdet::nms_indices'
# Scores of candidates that must never be selected; ONNX drops scores <= the threshold below.
_INVALID = -1.0
_SCORE_THRESHOLD = -0.5
_SYMBOLIC_OPSET = 11  # NonMaxSuppression exists from opset 10; 11 fixed its semantics


@torch.library.custom_op(OP_NAME, mutates_args=())
def nms_indices(boxes: Tensor, scores: Tensor, max_per_class: int, iou_threshold: float,
                score_threshold: float) -> Tensor:
    """ONNX ``NonMaxSuppression`` semantics, computed with :func:`nms`.

    Args:
        boxes (Tensor): ``[N, K, 4]`` x1y1x2y2.
        scores (Tensor): ``[N, C, K]``; only boxes scoring above ``score_threshold`` in a class
            take part in that class's NMS.
        max_per_class (int): At most this many boxes kept per (image, class).
        iou_threshold (float): A box is dropped when its IoU with a kept, higher-scoring box of
            its (image, class) exceeds this.
        score_threshold (float): See ``scores``.

    Returns:
        Tensor: Long ``[M, 3]`` (image, class, box) triples, per (image, class) by decreasing
        score.
    """
    rows = []
    for img in range(scores.shape[0]):
        for cls in range(scores.shape[1]):
            idx = (scores[img, cls] > score_threshold).nonzero()[:, 0]
            keep = idx[nms(boxes[img, idx], scores[img, cls, idx], iou_threshold)]
            keep = keep[:max_per_class]
            rows.append(torch.stack([torch.full_like(keep, img), torch.full_like(keep, cls),
                                     keep], dim=1))
    return torch.cat(rows) if rows else boxes.new_zeros((0, 3), dtype=torch.long)


@nms_indices.register_fake
def _nms_indices_fake(boxes: Tensor, scores: Tensor, max_per_class: int, iou_threshold: float,
                      score_threshold: float) -> Tensor:
    """Shape-only version: a data-dependent number of rows."""
    num = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((num, 3), dtype=torch.long)


def _nms_symbolic(g: object, boxes: object, scores: object, max_per_class: object,
                  iou_threshold: object, score_threshold: object) -> object:
    """The ONNX node: ``NonMaxSuppression(boxes, scores, max, iou, score)`` (corner boxes)."""
    from torch.onnx import symbolic_helper

    def const(value: object, kind: str, dtype: torch.dtype) -> object:
        value = symbolic_helper._maybe_get_const(value, kind)
        return g.op('Constant', value_t=torch.tensor([value], dtype=dtype))

    return g.op('NonMaxSuppression', boxes, scores, const(max_per_class, 'i', torch.long),
                const(iou_threshold, 'f', torch.float), const(score_threshold, 'f', torch.float),
                center_point_box_i=0)


@functools.cache
def register_nms_symbolic() -> None:
    """Teach the TorchScript-based ONNX exporter :data:`OP_NAME` (once; importing
    ``torch.onnx`` only when exporting keeps ``import fcosdet.deployment`` light)."""
    from torch.onnx import register_custom_op_symbolic
    register_custom_op_symbolic(OP_NAME, _nms_symbolic, _SYMBOLIC_OPSET)


def padded_detections(boxes: Tensor, scores: Tensor, labels: Tensor, valid: Tensor,
                      num_classes: int, iou_threshold: float, max_per_img: int,
                      min_bbox_size: float = -1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Size filter, class-aware NMS and the top ``max_per_img`` per image, padded.

    The same detections as :func:`fcosdet.models.dense_heads.dense_postprocess.
    finish_detections` (without rescaling): every (image, class) is its own NMS group.

    Args:
        boxes (Tensor): ``[N, K, 4]`` decoded candidates.
        scores (Tensor): ``[N, K]``, non-negative.
        labels (Tensor): Long ``[N, K]``.
        valid (Tensor): Bool ``[N, K]``.
        num_classes (int): C.
        iou_threshold (float): NMS IoU threshold.
        max_per_img (int): P >= 1.
        min_bbox_size (float): Boxes must be wider and taller than this (< 0: no filter).

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: ``dets [N, P, 4]`` (zeros in padding rows),
        ``scores [N, P]`` by decreasing score (0 in padding rows), long ``labels [N, P]`` (-1 in
        padding rows) and long ``num_dets [N]``.
    """
    if min_bbox_size >= 0:
        valid = valid & ((boxes[..., 2:] - boxes[..., :2]) > min_bbox_size).all(dim=-1)
    invalid = torch.full_like(scores, _INVALID)
    masked = torch.where(valid, scores, invalid)
    classes = torch.arange(num_classes, device=labels.device)
    in_class = labels[:, None, :] == classes[None, :, None]  # [N, C, K]
    class_scores = torch.where(in_class, masked[:, None, :], invalid[:, None, :])
    selected = torch.ops.fcosdet.nms_indices(boxes, class_scores, max_per_img, iou_threshold,
                                             _SCORE_THRESHOLD)
    img_idx, box_idx = selected[:, 0], selected[:, 2]
    kept = torch.index_put(invalid, (img_idx, box_idx), masked[img_idx, box_idx])
    # P padding slots behind the K candidates make a top-P always possible, whatever K.
    kept = torch.cat([kept, invalid[:, :1].expand(-1, max_per_img)], dim=1)
    top_scores, top_idx = kept.topk(max_per_img, dim=1)
    found = top_scores > _SCORE_THRESHOLD
    boxes = torch.cat([boxes, torch.zeros_like(boxes[:, :1]).expand(-1, max_per_img, -1)], dim=1)
    labels = torch.cat([labels, torch.full_like(labels[:, :1], -1).expand(-1, max_per_img)],
                       dim=1)
    dets = boxes.gather(1, top_idx[..., None].expand(-1, -1, 4))
    dets = torch.where(found[..., None], dets, torch.zeros_like(dets))
    top_scores = torch.where(found, top_scores, torch.zeros_like(top_scores))
    top_labels = torch.where(found, labels.gather(1, top_idx), torch.full_like(top_idx, -1))
    return dets, top_scores, top_labels, found.sum(dim=1)
