"""Compare an end-to-end ONNX file's detections with the PyTorch ``predict`` of its model.

Shape letters: N images, H/W padded batch height/width, P rows per image, K_n detections of
image n.
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


def compare_rows(expected: list[dict[str, np.ndarray]], dets: np.ndarray, scores: np.ndarray,
                 labels: np.ndarray, num_dets: np.ndarray) -> dict[str, float | int | bool]:
    """Row-by-row differences of padded ONNX outputs from PyTorch detections (both sorted by
    decreasing score).

    Args:
        expected (list[dict[str, np.ndarray]]): From :func:`pytorch_detections`.
        dets, scores, labels (np.ndarray): ``[N, P, 4]``, ``[N, P]``, ``[N, P]`` ONNX outputs.
        num_dets (np.ndarray): ``[N]``.

    Returns:
        dict: ``num_pytorch`` and ``num_onnx`` (totals), ``max_box_diff`` and
        ``max_score_diff`` over the common rows, ``labels_equal``.
    """
    box_diff, score_diff, labels_equal = 0.0, 0.0, True
    for img, exp in enumerate(expected):
        rows = min(len(exp['scores']), int(num_dets[img]))
        if rows:
            box_diff = max(box_diff, float(np.abs(dets[img, :rows] - exp['bboxes'][:rows]).max()))
            score_diff = max(score_diff,
                             float(np.abs(scores[img, :rows] - exp['scores'][:rows]).max()))
            labels_equal &= bool((labels[img, :rows] == exp['labels'][:rows]).all())
    return dict(num_pytorch=sum(len(e['scores']) for e in expected),
                num_onnx=int(num_dets.sum()), max_box_diff=box_diff,
                max_score_diff=score_diff, labels_equal=labels_equal)
