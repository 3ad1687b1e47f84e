"""Dumped detection results (``tools/test.py --out results.pkl``) paired with the ground truth.

Shape letters: K detections of an image, M gt boxes of an image.
"""
from __future__ import annotations

import os.path as osp
from typing import NamedTuple

import numpy as np
import torch
from mmengine.dataset import BaseDataset

from fcosdet.utils.safe_pickle import load_results_pickle


class ImageDets(NamedTuple):
    """Detections of one image in original-image pixels.

    Attributes:
        bboxes: float64 [K, 4] ``(x1, y1, x2, y2)``.
        scores: float64 [K].
        labels: int64 [K] in [0, C).
    """

    bboxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


class ImageGt(NamedTuple):
    """Ground truth of one image in original-image pixels.

    Attributes:
        bboxes: float64 [M, 4] ``(x1, y1, x2, y2)``.
        labels: int64 [M] in [0, C).
        ignore: bool [M], True for ignored (crowd) boxes.
    """

    bboxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray


def _array(value: torch.Tensor | np.ndarray | list, dtype: type) -> np.ndarray:
    """A tensor or array-like as a numpy array of ``dtype``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def load_det_results(path: str) -> list[tuple[int, ImageDets]]:
    """Read a pickle of ``tools/test.py --out`` (mmengine ``DumpResults``).

    Args:
        path: The ``.pkl`` file: a list of sample dicts with ``img_id`` and ``pred_instances``
            (``bboxes`` [K, 4], ``scores`` [K], ``labels`` [K]).

    Returns:
        ``(img_id, detections)`` per image, in the file's order.

    Raises:
        ValueError: If the file does not hold such a list, or names a function a results
            file never needs (names the file and the entry or function).
    """
    results = load_results_pickle(path)  # never runs code named by the file
    if not isinstance(results, list):
        raise ValueError(f'{path}: expected a list of results (tools/test.py --out), '
                         f'got {type(results).__name__}')
    out = []
    for index, sample in enumerate(results):
        pred = sample.get('pred_instances') if isinstance(sample, dict) else None
        if pred is None or 'img_id' not in sample or not {'bboxes', 'scores',
                                                           'labels'} <= set(pred):
            raise ValueError(f'{path}: entry {index} has no img_id or no pred_instances with '
                             'bboxes, scores and labels')
        dets = ImageDets(_array(pred['bboxes'], np.float64).reshape(-1, 4),
                         _array(pred['scores'], np.float64).reshape(-1),
                         _array(pred['labels'], np.int64).reshape(-1))
        out.append((int(sample['img_id']), dets))
    return out


def gt_of_data_info(info: dict) -> ImageGt:
    """The ground truth of a dataset entry (``instances`` of ``CocoDataset.data_list``)."""
    instances = info.get('instances', [])
    return ImageGt(np.asarray([i['bbox'] for i in instances], np.float64).reshape(-1, 4),
                   np.asarray([i['bbox_label'] for i in instances], np.int64),
                   np.asarray([i.get('ignore_flag', 0) for i in instances], bool))


def pair_with_gt(results: list[tuple[int, ImageDets]],
                 data_infos: list[dict]) -> list[tuple[dict, ImageDets, ImageGt]]:
    """Match each result to its dataset entry by ``img_id``.

    Args:
        results: From :func:`load_det_results`.
        data_infos: The dataset's entries (``img_id``, ``img_path``, ``instances``).

    Returns:
        ``(data_info, detections, ground truth)`` per result, in the results' order.

    Raises:
        ValueError: If a result's image id is not in the dataset.
    """
    by_id = {int(info['img_id']): info for info in data_infos}
    unknown = [img_id for img_id, _ in results if img_id not in by_id]
    if unknown:
        raise ValueError(f'image ids {unknown[:10]} of the results are not in the dataset '
                         '(results of another dataset? check --cfg-options)')
    return [(by_id[img_id], dets, gt_of_data_info(by_id[img_id])) for img_id, dets in results]


def results_with_gt(path: str, dataset: BaseDataset) -> list[tuple[dict, ImageDets, ImageGt]]:
    """Read a results pickle and pair each image with its entry of ``dataset``.

    Args:
        path: The ``.pkl`` of ``tools/test.py --out``.
        dataset: The dataset the results were made on (e.g. the config's test dataset).

    Returns:
        ``(data_info, detections, ground truth)`` per result, in the file's order.

    Raises:
        ValueError: Missing or malformed file, image ids not in the dataset, or labels beyond
            its classes (the message names the file or the ids).
    """
    if not osp.isfile(path):
        raise ValueError(f'prediction file not found: {path}')
    results = load_det_results(path)
    num_classes = len(dataset.metainfo['classes'])
    if any(dets.labels.size and dets.labels.max() >= num_classes for _, dets in results):
        raise ValueError(f'{path}: a predicted label is >= the {num_classes} classes of the '
                         'dataset')
    return pair_with_gt(results, [dataset.get_data_info(i) for i in range(len(dataset))])
