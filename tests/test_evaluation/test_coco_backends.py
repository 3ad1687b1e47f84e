"""COCO backends: the fast one gives pycocotools' numbers; per-class PR curves by hand."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from fcosdet.evaluation import CocoMetric
from fcosdet.evaluation.metrics import coco_backends
from fcosdet.evaluation.metrics.coco_utils import classwise_ap, pr_curves

TOOL = Path(__file__).resolve().parents[2] / 'tools/analysis_tools/benchmark_coco_eval.py'


def load_benchmark_tool():
    spec = importlib.util.spec_from_file_location('benchmark_coco_eval', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    """The benchmark's synthetic set, small: 40 images, 8 classes, 120 detections per image
    (more than maxDets 100), scores rounded to 2 decimals (many ties)."""
    gt, results = load_benchmark_tool().make_synthetic_coco(
        num_images=40, num_classes=8, gt_per_image=6, dets_per_image=120, seed=3)
    for r in results:
        r['pred']['scores'] = np.round(r['pred']['scores'], 2)
    path = tmp_path_factory.mktemp('synthetic') / 'gt.json'
    path.write_text(json.dumps(gt))
    return str(path), [c['name'] for c in gt['categories']], results


def evaluate(ann_file, classes, results, backend, **kwargs):
    metric = CocoMetric(ann_file=ann_file, backend=backend, classwise=True, **kwargs)
    metric.dataset_meta = dict(classes=classes)
    return metric.compute_metrics(results), metric


@pytest.mark.parametrize('kwargs', [dict(), dict(proposal_nums=(1, 10, 100)),
                                    dict(iou_thrs=[0.5, 0.6, 0.75])])
def test_hotcoco_matches_pycocotools_on_synthetic_set(synthetic, kwargs):
    ann_file, classes, results = synthetic
    # classes in another order than the category ids: labels map through the names
    classes = classes[::-1]
    results = [dict(r, pred=dict(r['pred'], labels=len(classes) - 1 - r['pred']['labels']))
               for r in results]
    ref, ref_metric = evaluate(ann_file, classes, results, 'pycocotools', **kwargs)
    fast, fast_metric = evaluate(ann_file, classes, results, 'hotcoco', **kwargs)
    ref_stats, fast_stats = ref_metric.coco_eval.stats, fast_metric.coco_eval.stats
    assert 0.05 < ref_stats[0] < 0.95 and len(ref_stats) == len(fast_stats) == 12
    np.testing.assert_allclose(fast_stats, ref_stats, rtol=0, atol=1e-6)
    assert fast == pytest.approx(ref, abs=1e-6)
    for fn in (classwise_ap, lambda ev, ids: pr_curves(ev, ids)[1]):
        np.testing.assert_allclose(fn(fast_metric.coco_eval, fast_metric.cat_ids),
                                   fn(ref_metric.coco_eval, ref_metric.cat_ids),
                                   rtol=0, atol=1e-6)


def test_benchmark_set_has_coco_shape():
    gt, results = load_benchmark_tool().make_synthetic_coco(num_images=50, seed=0)
    assert len(gt['images']) == len(results) == 50 and len(gt['categories']) == 80
    assert all(len(r['pred']['labels']) == 100 for r in results)
    boxes = np.array([a['bbox'] for a in gt['annotations']])
    sides = np.sqrt(boxes[:, 2] * boxes[:, 3])
    assert (sides < 32).any() and ((sides >= 32) & (sides < 96)).any() and (sides >= 96).any()
    images = {img['id']: img for img in gt['images']}
    for ann in gt['annotations']:  # inside the image
        x, y, w, h = ann['bbox']
        img = images[ann['image_id']]
        assert 0 <= x and x + w <= img['width'] and 0 <= y and y + h <= img['height']


def test_pr_curve_by_hand(tmp_path):
    """One cat gt box; a false positive above the true positive: precision 1/2 at every
    recall point and IoU threshold. The dog class has no gt: NaN."""
    gt = dict(images=[dict(id=1, file_name='1.png', width=100, height=100)],
              annotations=[dict(id=1, image_id=1, category_id=5, bbox=[10, 10, 30, 30],
                                area=900, iscrowd=0)],
              categories=[dict(id=5, name='cat'), dict(id=2, name='dog')])
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(gt))
    pred = dict(bboxes=np.array([[60, 60, 90, 90], [10, 10, 40, 40]], float),
                scores=np.array([0.9, 0.8]), labels=np.array([0, 0]))
    for backend in ('pycocotools', 'hotcoco'):
        _, metric = evaluate(str(path), ['cat', 'dog'], [dict(img_id=1, pred=pred)], backend)
        recall, precision = pr_curves(metric.coco_eval, metric.cat_ids)
        np.testing.assert_allclose(recall, np.linspace(0, 1, 101))
        assert precision.shape == (2, 10, 101)
        np.testing.assert_allclose(precision[0], 0.5)
        assert np.isnan(precision[1]).all()


def test_unknown_or_missing_backend(monkeypatch):
    with pytest.raises(KeyError, match="unknown backend 'fastest'"):
        CocoMetric(backend='fastest')
    monkeypatch.setitem(coco_backends.COCO_BACKENDS, 'absent',
                        ('no_such_module_xyz', 'COCO', 'no_such_module_xyz', 'COCOeval',
                         'fcosdet[absent]'))
    with pytest.raises(ImportError, match=r'pip install "fcosdet\[absent\]"'):
        CocoMetric(backend='absent')
