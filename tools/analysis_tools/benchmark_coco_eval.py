"""Time ``CocoMetric`` with each COCO backend on a COCO-sized synthetic set; check the numbers.

Example (the figures in docs/benchmark.md)::

    python tools/analysis_tools/benchmark_coco_eval.py --backends pycocotools hotcoco \
        faster-coco-eval ultrafast-pycocotools --json coco_eval.json

The synthetic set has COCO val's size: 5,000 images of 640 x 360..640 pixels, 80 classes,
~7.3 gt boxes per image (~36k; side lengths log-uniform over 6..400 pixels, so all three COCO
size ranges; 1% crowd) and 100 detections per image: every gt box jittered (20% with a wrong
class) and random boxes for the rest. Each backend scores the same results through
``CocoMetric.compute_metrics`` (conversion, ``loadRes``, ``evaluate``, ``accumulate``,
``summarize``); its 12 summary numbers and whole precision array are compared with the first
backend's.

``faster-coco-eval`` and ``ultrafast-pycocotools`` are candidates that were measured but are not
offered by ``CocoMetric``; naming them here adds them to its backend table for this run only.
"""
import argparse
import contextlib
import json
import os.path as osp
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence

import numpy as np
from mmengine.logging import MMLogger

from fcosdet.evaluation import CocoMetric
from fcosdet.evaluation.metrics.coco_backends import COCO_BACKENDS

# measured candidates (see the module docstring): name -> COCO_BACKENDS entry
CANDIDATES = {
    'faster-coco-eval': ('faster_coco_eval', 'COCO', 'faster_coco_eval', 'COCOeval_faster',
                         'faster-coco-eval'),
    'ultrafast-pycocotools': ('ultrafast_pycocotools', 'COCO', 'ultrafast_pycocotools',
                              'COCOeval', 'ultrafast-pycocotools'),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Benchmark the COCO evaluation backends')
    parser.add_argument('--backends', nargs='+', default=['pycocotools', 'hotcoco'],
                        choices=[*COCO_BACKENDS, *CANDIDATES],
                        help='backends to time; the first is the reference for the numbers')
    parser.add_argument('--num-images', type=int, default=5000)
    parser.add_argument('--num-classes', type=int, default=80)
    parser.add_argument('--gt-per-image', type=float, default=7.3,
                        help='mean gt boxes per image (Poisson)')
    parser.add_argument('--dets-per-image', type=int, default=100)
    parser.add_argument('--repeat', type=int, default=1, help='runs per backend (median)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the results to this file')
    return parser.parse_args(argv)


def _boxes(rng: np.random.Generator, num: int, widths: np.ndarray,
           heights: np.ndarray) -> np.ndarray:
    """``num`` xywh boxes inside images of the given sizes [num]; sides log-uniform 6..400."""
    side = np.exp(rng.uniform(np.log(6), np.log(400), num))
    ratio = np.exp(rng.normal(0, 0.5, num))
    w = np.minimum(side * np.sqrt(ratio), widths - 1)
    h = np.minimum(side / np.sqrt(ratio), heights - 1)
    x, y = rng.uniform(0, 1, num) * (widths - w), rng.uniform(0, 1, num) * (heights - h)
    return np.stack([x, y, w, h], axis=1)


def make_synthetic_coco(num_images: int = 5000, num_classes: int = 80,
                        gt_per_image: float = 7.3, dets_per_image: int = 100,
                        seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO-format ground truth and ``CocoMetric`` results for it (see the module docstring).

    Returns:
        ``gt`` (``images``, ``annotations``, ``categories`` with ids 1..C) and one
        ``dict(img_id, pred=dict(bboxes [K, 4] x1y1x2y2, scores [K], labels [K]))`` per image
        (labels 0..C-1 are category ids 1..C).
    """
    rng = np.random.default_rng(seed)
    img_ids = np.arange(1, num_images + 1)
    widths = np.full(num_images, 640.0)
    heights = rng.integers(360, 641, num_images).astype(np.float64)
    counts = np.minimum(rng.poisson(gt_per_image, num_images), dets_per_image)
    owner = np.repeat(np.arange(num_images), counts)                      # image of each gt
    gt_boxes = _boxes(rng, len(owner), widths[owner], heights[owner])
    gt_labels = rng.integers(0, num_classes, len(owner))
    crowd = rng.random(len(owner)) < 0.01
    annotations = [
        dict(id=i + 1, image_id=int(img_ids[o]), category_id=int(c) + 1, bbox=b,
             area=b[2] * b[3], iscrowd=int(k))
        for i, (o, c, b, k) in enumerate(zip(owner, gt_labels, gt_boxes.tolist(), crowd))]
    # detections: every gt jittered by ~10% of its size, then random boxes up to K per image
    jitter = gt_boxes + rng.normal(0, 0.1, gt_boxes.shape) * gt_boxes[:, [2, 3, 2, 3]]
    jitter_labels = np.where(rng.random(len(owner)) < 0.2,
                             rng.integers(0, num_classes, len(owner)), gt_labels)
    noise_owner = np.repeat(np.arange(num_images), dets_per_image - counts)
    noise = _boxes(rng, len(noise_owner), widths[noise_owner], heights[noise_owner])
    det_owner = np.concatenate([owner, noise_owner])
    boxes = np.concatenate([jitter, noise])
    labels = np.concatenate([jitter_labels, rng.integers(0, num_classes, len(noise_owner))])
    scores = np.concatenate([rng.uniform(0.3, 1, len(owner)), rng.uniform(0, 0.7,
                                                                         len(noise_owner))])
    order = np.argsort(det_owner, kind='stable')
    splits = np.cumsum(np.bincount(det_owner, minlength=num_images))[:-1]
    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    results = [dict(img_id=int(i), pred=dict(bboxes=b, scores=s, labels=c))
               for i, b, s, c in zip(img_ids, np.split(xyxy[order], splits),
                                     np.split(scores[order], splits),
                                     np.split(labels[order], splits))]
    images = [dict(id=int(i), file_name=f'{i:012d}.jpg', width=int(w), height=int(h))
              for i, w, h in zip(img_ids, widths, heights)]
    categories = [dict(id=c + 1, name=f'class_{c}') for c in range(num_classes)]
    return dict(images=images, annotations=annotations, categories=categories), results


def time_backend(backend: str, ann_file: str, classes: list[str], results: list[dict],
                 repeat: int) -> dict:
    """Build a ``CocoMetric`` with ``backend`` and time ``compute_metrics`` ``repeat`` times."""
    start = time.perf_counter()
    metric = CocoMetric(ann_file=ann_file, backend=backend)
    index_s = time.perf_counter() - start
    metric.dataset_meta = dict(classes=classes)
    times, cpu_times = [], []
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        metric.compute_metrics(results)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return dict(backend=backend, index_s=index_s, eval_s=statistics.median(times),
                cpu_s=statistics.median(cpu_times), eval_runs_s=times, cpu_runs_s=cpu_times,
                stats=np.asarray(metric.coco_eval.stats).tolist(),
                precision=np.asarray(metric.coco_eval.eval['precision']))


def _cpu_model() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    with contextlib.suppress(OSError), open('/proc/cpuinfo') as file:
        for line in file:
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return platform.processor() or platform.machine()


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the set, time every backend and print the table."""
    args = parse_args(argv)
    MMLogger.get_instance('benchmark_coco_eval', log_level='WARNING')  # no COCO summaries
    for name in args.backends:
        COCO_BACKENDS.setdefault(name, CANDIDATES.get(name))
    gt, results = make_synthetic_coco(args.num_images, args.num_classes, args.gt_per_image,
                                      args.dets_per_image, args.seed)
    classes = [c['name'] for c in gt['categories']]
    print(f'{len(gt["images"])} images, {len(gt["annotations"])} gt boxes, '
          f'{sum(len(r["pred"]["labels"]) for r in results)} detections, {len(classes)} classes')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ann_file = osp.join(tmp, 'synthetic_gt.json')
        with open(ann_file, 'w') as file:
            json.dump(gt, file)
        for backend in args.backends:
            rows.append(time_backend(backend, ann_file, classes, results, args.repeat))
            print(f'{backend}: {rows[-1]["eval_s"]:.2f} s ({rows[-1]["cpu_s"]:.2f} s CPU)',
                  flush=True)
    ref = rows[0]
    print('\n| backend | gt index (s) | compute_metrics (s) | CPU time (s) | speed-up (CPU) | '
          'max abs diff of the 12 numbers | of the precision array |\n'
          '|---|---|---|---|---|---|---|')
    for row in rows:
        row['speedup'] = ref['cpu_s'] / row['cpu_s']
        row['max_stat_diff'] = float(np.abs(np.subtract(row['stats'], ref['stats'])).max())
        row['max_precision_diff'] = float(np.abs(row.pop('precision') - ref['precision']).max()
                                          if row is not ref else 0.0)
        print(f'| {row["backend"]} | {row["index_s"]:.2f} | {row["eval_s"]:.2f} | '
              f'{row["cpu_s"]:.2f} | {row["speedup"]:.1f}x | {row["max_stat_diff"]:.1e} | '
              f'{row["max_precision_diff"]:.1e} |')
    ref.pop('precision')
    names = list(CocoMetric._stat_index(CocoMetric(backend=ref['backend']).proposal_nums))
    print('\n' + ' '.join(names) + '\n' + ' '.join(f'{v:.4f}' for v in ref['stats']))
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(dict(args=vars(args), cpu=_cpu_model(),
                           python=platform.python_version(), rows=rows), file, indent=1)


if __name__ == '__main__':
    main()
