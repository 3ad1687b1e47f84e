"""From the graph's fixed-size outputs to each image's detections in its own pixels.

Shape letters: N images, K detection rows of the graph (``max_per_img``), K_n valid rows of
image n.
"""
from collections.abc import Sequence

import numpy as np


def split_detections(dets: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                     num_dets: np.ndarray,
                     scale_factors: Sequence[tuple[float, float]]) -> list[dict[str, np.ndarray]]:
    """Keep each image's valid rows and map its boxes back to the original image.

    As ``inference_detector`` with ``rescale``: the boxes (in the resized image's pixels) are
    divided by the image's scale factor ``(w_scale, h_scale)`` in float32.

    Args:
        dets: float32 ``[N, K, 4]`` x1y1x2y2 in resized-image pixels.
        scores: float32 ``[N, K]``, descending per image.
        labels: int ``[N, K]``.
        num_dets: int ``[N]``, valid rows per image.
        scale_factors: N ``(w_scale, h_scale)`` of the resize.

    Returns:
        N dicts of ``bboxes`` float32 ``[K_n, 4]``, ``scores`` float32 ``[K_n]`` and ``labels``
        int64 ``[K_n]``.
    """
    results = []
    for n, (w_scale, h_scale) in enumerate(scale_factors):
        count = int(num_dets[n])
        factor = np.array([w_scale, h_scale, w_scale, h_scale], dtype=np.float32)
        results.append(dict(bboxes=dets[n, :count].astype(np.float32) / factor,
                            scores=scores[n, :count].astype(np.float32),
                            labels=labels[n, :count].astype(np.int64)))
    return results


def to_json_dict(result: dict[str, np.ndarray], classes: Sequence[str],
                 score_thr: float = 0.0) -> dict[str, list]:
    """One image's detections as ``tools/infer.py`` writes them (JSON-ready lists).

    Args:
        result: ``bboxes`` ``[K_n, 4]``, ``scores`` ``[K_n]``, ``labels`` ``[K_n]``.
        classes: Class names, index = label.
        score_thr: Keep the detections with a score of at least this (0: all).

    Returns:
        ``dict(bboxes=[[x1, y1, x2, y2], ...], scores=[...], labels=[...], label_names=[...])``.
    """
    keep = result['scores'] >= score_thr
    labels = result['labels'][keep].tolist()
    return dict(bboxes=result['bboxes'][keep].tolist(), scores=result['scores'][keep].tolist(),
                labels=labels,
                label_names=[classes[i] if 0 <= i < len(classes) else str(i) for i in labels])
