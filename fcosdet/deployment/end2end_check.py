"""Compare an end-to-end ONNX file's detections with the PyTorch ``predict`` of its model.

Shape letters: N images, H/W padded batch height/width, P rows per image, K_n detections of
image n, A/B boxes of two sets.
"""
import numpy as np
import torch
from torch import nn

from fcosdet.structures import DetDataSample


def pytorch_detections(model: nn.Module, images: np.ndarray,
                       img_shapes: np.ndarray) -> list[dict[str, np.ndarray]]:
    """``model.predict`` (no rescale) on the images of a padded batch, as the ONNX graph sees it.

    Args:
        model (nn.Module): Eval-mode detector.
        images (np.ndarray): float32 ``[N, 3, H, W]`` raw pixels, each image at the top left.
        img_shapes (np.ndarray): ``[N, 2]`` (h, w) of each image before padding.

    Returns:
        list[dict[str, np.ndarray]]: N dicts ``bboxes [K_n, 4]``, ``scores [K_n]``,
        ``labels [K_n]`` by decreasing score.
    """
    crops, samples = [], []
    for image, (height, width) in zip(images, img_shapes.astype(int).tolist()):
        crops.append(torch.from_numpy(np.ascontiguousarray(image[:, :height, :width])))
        sample = DetDataSample()
        sample.set_metainfo(dict(img_shape=(height, width), ori_shape=(height, width),
                                 scale_factor=(1.0, 1.0)))
        samples.append(sample)
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=crops, data_samples=samples), False)
        results = model.predict(data['inputs'], data['data_samples'], rescale=False)
    return [dict(bboxes=r.pred_instances.bboxes.numpy(), scores=r.pred_instances.scores.numpy(),
                 labels=r.pred_instances.labels.numpy()) for r in results]


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU ``[A, B]`` of x1y1x2y2 boxes ``[A, 4]`` and ``[B, 4]``."""
    top_left = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(-1)
    area1 = (boxes1[:, 2:] - boxes1[:, :2]).prod(-1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2]).prod(-1)
    return inter / np.maximum(area1[:, None] + area2[None] - inter, 1e-9)


def match_detections(expected: list[dict[str, np.ndarray]], dets: np.ndarray,
                     scores: np.ndarray, labels: np.ndarray, num_dets: np.ndarray,
                     min_iou: float = 0.98, box_tol: float = 1e-3,
                     score_tol: float = 2e-3) -> dict[str, float | int]:
    """Match every PyTorch detection to its own ONNX detection (the issue's exactness rule):
    the same label, IoU >= ``min_iou`` or every corner within ``box_tol`` pixels (thin boxes
    clipped at the border have an unstable IoU), and the score within ``score_tol``.

    Each PyTorch detection, by decreasing score, takes the unused qualifying ONNX detection
    whose corners are closest.

    Args:
        expected (list[dict[str, np.ndarray]]): From :func:`pytorch_detections`.
        dets, scores, labels (np.ndarray): ``[N, P, 4]``, ``[N, P]``, ``[N, P]`` ONNX outputs.
        num_dets (np.ndarray): ``[N]`` valid rows.

    Returns:
        dict: ``num_pytorch`` and ``num_onnx`` (totals), ``matched``, and over the matched
        pairs ``max_box_diff`` (largest corner difference) and ``max_score_diff``.
    """
    matched, box_diff, score_diff = 0, 0.0, 0.0
    for img, exp in enumerate(expected):
        rows = int(num_dets[img])
        corner_gap = np.abs(exp['bboxes'][:, None] - dets[img, None, :rows]).max(-1)
        score_gap = np.abs(exp['scores'][:, None] - scores[img, None, :rows])
        ok = (((box_iou(exp['bboxes'], dets[img, :rows]) >= min_iou) | (corner_gap <= box_tol))
              & (exp['labels'][:, None] == labels[img, None, :rows]) & (score_gap <= score_tol))
        used = np.zeros(rows, bool)
        for k in range(len(exp['scores'])):
            free = np.flatnonzero(ok[k] & ~used)
            if len(free) == 0:
                continue
            best = free[np.argmin(corner_gap[k, free])]
            used[best] = True
            matched += 1
            box_diff = max(box_diff, float(corner_gap[k, best]))
            score_diff = max(score_diff, float(score_gap[k, best]))
    return dict(num_pytorch=sum(len(e['scores']) for e in expected),
                num_onnx=int(num_dets.sum()), matched=matched, max_box_diff=box_diff,
                max_score_diff=score_diff)
