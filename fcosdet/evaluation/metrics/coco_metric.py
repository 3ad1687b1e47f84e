"""COCO box AP/AR, scored by pycocotools' ``COCOeval`` (or a faster backend, same numbers).

Shape letters: K detections of an image, M gt boxes of an image, C classes.
"""
from __future__ import annotations

import json
import os.path as osp
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist

from fcosdet.datasets.coco_ann import CocoAnnotations, read_coco_json
from fcosdet.registry import METRICS

from .coco_backends import CocoApi, coco_api, coco_from_dict, run_cocoeval
from .coco_utils import classwise_table, detections_to_coco, gt_to_coco_dict
from .gather import evaluate_gathered


def _numpy(value: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    """A Tensor or array-like as a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _instances_numpy(instances: dict | None, with_scores: bool = False) -> dict:
    """``bboxes`` float64 [K, 4], ``labels`` int64 [K] (and ``scores`` [K]) as numpy."""
    if instances is None:
        out = dict(bboxes=np.zeros((0, 4)), labels=np.zeros(0, np.int64))
    else:
        out = dict(bboxes=_numpy(instances['bboxes']).reshape(-1, 4).astype(np.float64),
                   labels=_numpy(instances['labels']).reshape(-1).astype(np.int64))
    if with_scores:
        out['scores'] = (np.zeros(0) if instances is None
                         else _numpy(instances['scores']).reshape(-1).astype(np.float64))
    return out


def _load_gt(ann_file: str, backend_args: dict | None, api: CocoApi,
             format_only: bool = False) -> Any:
    """Read and check a ground-truth file; annotations without ``area`` get ``w * h``.

    Raises:
        ValueError: The file is malformed, or has no annotations although the metric scores
            (every score would be 0 and a "best" checkpoint saved on it).
    """
    raw = read_coco_json(ann_file, backend_args)
    CocoAnnotations.from_json(raw, ann_file)  # same checks and messages as CocoDataset
    if not raw['annotations'] and not format_only:
        raise ValueError(f'CocoMetric: the ground truth {ann_file} has no annotations, so there '
                         'is nothing to score (a test set without labels? set format_only=True '
                         'and outfile_prefix to only write the detections)')
    for ann in raw['annotations']:
        if 'area' not in ann:
            ann['area'] = float(ann['bbox'][2] * ann['bbox'][3])
    return coco_from_dict(raw, api)


@METRICS.register_module()
class CocoMetric(BaseMetric):
    """COCO detection metric (``coco/bbox_mAP``, ``_50``, ``_75``, ``_s``, ``_m``, ``_l``).

    ``process`` reads, from each sample dict, ``img_id``, ``ori_shape`` and
    ``pred_instances`` (``bboxes`` [K, 4] in original-image pixels, ``scores`` [K],
    ``labels`` [K] in [0, C)). Labels are mapped back to the annotation file's category ids,
    in the order of ``dataset_meta['classes']``.

    Ground truth comes from ``ann_file``; without it, from each sample's ``gt_instances``
    (and ``ignored_instances`` as crowd), which must then be in original-image pixels: load
    annotations after ``Resize`` in the test pipeline, as the shipped configs do.

    Distributed: each rank processes its shard; the results reach rank 0 through the process
    group, never through a shared folder (:mod:`fcosdet.evaluation.metrics.gather`: the nodes
    need no common filesystem); the sampler's padding is dropped and any image id still
    repeated is scored once.

    Args:
        ann_file: COCO-format ground-truth file, or None.
        metric: Only ``'bbox'``.
        classwise: Also print a per-class table (AP, AP50, AP75, APs, APm, APl).
        iou_thrs: IoU thresholds; default 0.50:0.05:0.95.
        metric_items: Reported items, from ``mAP, mAP_50, mAP_75, mAP_s, mAP_m, mAP_l`` and
            ``AR@{n}`` (n in proposal_nums), ``AR_s@{n}``, ``AR_m@{n}``, ``AR_l@{n}``
            (n = last proposal number); default the six mAP items.
        proposal_nums: The three max-detection numbers of COCOeval (AP uses the last).
        format_only: Only write the detections JSON (``{outfile_prefix}.bbox.json``).
        outfile_prefix: Where to write the detections JSON; required with ``format_only``.
        collect_device: How results are gathered across ranks: ``'cpu'`` (in memory over a
            gloo group) or ``'gpu'`` (mmengine's device gather); neither uses files.
        prefix: Key prefix; default ``'coco'``.
        backend_args: mmengine file backend arguments for ``ann_file``.
        backend: COCO evaluation package: ``'pycocotools'`` or ``'hotcoco'`` (same numbers,
            much faster on large sets; ``pip install "fcosdet[fast-eval]"``).

    Attributes:
        coco_eval: The summarized ``COCOeval`` of the last ``compute_metrics`` (on the rank
            that scores), for per-class analysis; None before.
        cat_ids: The category id of each label used by that evaluation.
    """

    default_prefix: str | None = 'coco'

    def __init__(self,
                 ann_file: str | None = None,
                 metric: str | Sequence[str] = 'bbox',
                 classwise: bool = False,
                 iou_thrs: float | Sequence[float] | None = None,
                 metric_items: Sequence[str] | None = None,
                 proposal_nums: Sequence[int] = (100, 300, 1000),
                 format_only: bool = False,
                 outfile_prefix: str | None = None,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 backend_args: dict | None = None,
                 backend: str = 'pycocotools') -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.api = coco_api(backend)
        metrics = [metric] if isinstance(metric, str) else list(metric)
        if metrics != ['bbox']:
            raise KeyError(f"CocoMetric: metric must be 'bbox', got {metric!r}")
        if len(proposal_nums) != 3:
            raise ValueError(f'CocoMetric: proposal_nums must hold 3 numbers, got {proposal_nums}')
        if format_only and not outfile_prefix:
            raise ValueError('CocoMetric: format_only=True needs outfile_prefix')
        self.classwise = classwise
        self.proposal_nums = [int(n) for n in proposal_nums]
        self.iou_thrs = (np.linspace(0.5, 0.95, 10) if iou_thrs is None
                         else np.atleast_1d(np.asarray(iou_thrs, dtype=np.float64)))
        self.stat_index = self._stat_index(self.proposal_nums)
        self.metric_items = list(metric_items or ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m',
                                                  'mAP_l'])
        unknown = [item for item in self.metric_items if item not in self.stat_index]
        if unknown:
            raise KeyError(f'CocoMetric: unknown metric_items {unknown}; '
                           f'choose from {list(self.stat_index)}')
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        self.ann_file = ann_file
        self._coco_gt = None if ann_file is None else _load_gt(ann_file, backend_args,
                                                                self.api, format_only)
        self.coco_eval: Any = None
        self.cat_ids: list[int] = []

    @staticmethod
    def _stat_index(proposal_nums: list[int]) -> dict[str, int]:
        """Item name -> index in ``COCOeval.stats``."""
        last = proposal_nums[-1]
        names = ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'] + [
            f'AR@{n}' for n in proposal_nums] + [f'AR_{s}@{last}' for s in 'sml']
        return {name: index for index, name in enumerate(names)}

    def evaluate(self, size: int) -> dict:
        """Gather every rank's results on rank 0, score them there, return them on all ranks.

        Args:
            size: Length of the dataset (the sampler's padding is dropped).

        Returns:
            ``{prefix}/bbox_{item}`` for each of ``metric_items``, on every rank.
        """
        return evaluate_gathered(self, size)

    def process(self, data_batch: object, data_samples: Sequence[dict]) -> None:
        """Keep the predictions (and, without ``ann_file``, the ground truth) of a batch.

        Args:
            data_batch: Unused.
            data_samples: Sample dicts with ``img_id``, ``ori_shape``, ``pred_instances``
                (and ``gt_instances`` / ``ignored_instances`` when there is no ann_file).
        """
        for sample in data_samples:
            result = dict(img_id=int(sample['img_id']),
                          pred=_instances_numpy(sample['pred_instances'], with_scores=True))
            if self._coco_gt is None:
                height, width = sample['ori_shape'][:2]
                result['gt'] = dict(
                    height=int(height), width=int(width),
                    instances=_instances_numpy(sample.get('gt_instances')),
                    ignored=_instances_numpy(sample.get('ignored_instances')))
            self.results.append(result)

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        """Score the gathered results of the whole dataset.

        Args:
            results: One dict per processed image, from all ranks.

        Returns:
            ``bbox_{item}`` for each of ``metric_items`` (empty with ``format_only``).
        """
        self.coco_eval = None
        if not results:
            print_log('CocoMetric: no results to score', logger='current', level=30)
            return {}
        results = sorted({r['img_id']: r for r in reversed(results)}.values(),
                         key=lambda r: r['img_id'])
        classes = self._classes()
        coco_gt = (self._coco_gt if self._coco_gt is not None
                   else coco_from_dict(gt_to_coco_dict(results, classes), self.api))
        cat_ids = self.cat_ids = self._cat_ids(coco_gt, classes)
        img_ids = [r['img_id'] for r in results]
        missing = sorted(set(img_ids) - set(coco_gt.getImgIds()))
        if missing:
            raise ValueError(f'CocoMetric: image ids {missing[:10]} of the predictions are not '
                             f'in the ground truth {self.ann_file or "(from the samples)"}')
        dets = detections_to_coco(results, cat_ids)
        if self.outfile_prefix:
            self._dump(dets)
        if self.format_only:
            return {}
        if not dets:
            print_log('CocoMetric: no detections at all; every metric is 0', logger='current',
                      level=30)
            return {f'bbox_{item}': 0.0 for item in self.metric_items}
        coco_eval, log = run_cocoeval(self.api, coco_gt, dets, cat_ids, img_ids,
                                      self.proposal_nums, self.iou_thrs)
        print_log('\n' + log, logger='current')
        self.coco_eval = coco_eval
        if self.classwise:
            classwise_table(coco_eval, cat_ids, classes)
        stats = coco_eval.stats
        print_log('bbox_mAP_copypaste: ' + ' '.join(f'{v:.3f}' for v in stats[:6]),
                  logger='current')
        return {f'bbox_{item}': float(stats[self.stat_index[item]])
                for item in self.metric_items}

    def _classes(self) -> list[str] | None:
        """Class names of the dataset, if the Runner gave them."""
        meta = self.dataset_meta or {}
        return None if meta.get('classes') is None else list(meta['classes'])

    def _cat_ids(self, coco_gt: Any, classes: list[str] | None) -> list[int]:
        """Category id of each label: the file's categories named by the classes, in order."""
        if classes is None:
            return sorted(coco_gt.getCatIds())
        name_to_id = {cat['name']: cat['id'] for cat in coco_gt.loadCats(coco_gt.getCatIds())}
        unknown = [name for name in classes if name not in name_to_id]
        if unknown:
            raise ValueError(f'CocoMetric: classes {unknown} of the dataset are not categories '
                             f'of {self.ann_file or "the ground truth"}')
        return [name_to_id[name] for name in classes]

    def _dump(self, dets: list[dict]) -> None:
        """Write the detections JSON (COCO results format) to ``{outfile_prefix}.bbox.json``."""
        path = f'{self.outfile_prefix}.bbox.json'
        mkdir_or_exist(osp.dirname(osp.abspath(path)))
        with open(path, 'w') as file:
            json.dump(dets, file)
        print_log(f'CocoMetric: detections written to {path}', logger='current')
