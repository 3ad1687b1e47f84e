import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fcosdet.evaluation import CocoMetric
from fcosdet.evaluation.metrics.coco_utils import classwise_ap, classwise_table
from fcosdet.registry import METRICS

CLASSES = ('b', 'c', 'a')           # label order of the dataset
CAT_OF_LABEL = {0: 9, 1: 4, 2: 2}   # the file's category ids of those names
SIX = ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']


def make_gt(seed: int = 0) -> dict:
    """Three 200x200 images, boxes of all COCO size ranges, one crowd box."""
    rng = np.random.default_rng(seed)
    images = [dict(id=i, file_name=f'{i}.png', width=200, height=200) for i in (1, 2, 5, 8)]
    anns = []
    for img in images:
        for side in (12, 20, 45, 70, 110, 150):
            x, y = rng.uniform(0, 200 - side, 2)
            w, h = side * rng.uniform(0.8, 1.2, 2).clip(max=(200 - x) / side)
            anns.append(dict(id=len(anns) + 1, image_id=img['id'], category_id=int(
                rng.choice([2, 4, 9])), bbox=[x, y, w, h], area=w * h, iscrowd=0))
    anns[3]['iscrowd'] = 1
    categories = [dict(id=2, name='a'), dict(id=9, name='b'), dict(id=4, name='c')]
    return dict(images=images, annotations=anns, categories=categories)


def gt_instances(gt: dict, img_id: int, crowd: int) -> dict:
    anns = [a for a in gt['annotations'] if a['image_id'] == img_id and a['iscrowd'] == crowd]
    label_of_cat = {c: label for label, c in CAT_OF_LABEL.items()}
    boxes = torch.tensor([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                           a['bbox'][1] + a['bbox'][3]] for a in anns]).reshape(-1, 4)
    return dict(bboxes=boxes, labels=torch.tensor([label_of_cat[a['category_id']] for a in anns],
                                                   dtype=torch.long))


def random_preds(gt: dict, img_id: int, rng: np.random.Generator) -> dict:
    """Jittered gt boxes (some with a wrong label) plus random boxes, random scores."""
    inst = gt_instances(gt, img_id, 0)
    boxes = inst['bboxes'].numpy()
    jitter = boxes + rng.normal(0, 4, boxes.shape)
    noise_xy = rng.uniform(0, 150, (15, 2))
    noise = np.concatenate([noise_xy, noise_xy + rng.uniform(5, 50, (15, 2))], 1)
    labels = np.concatenate([inst['labels'].numpy(), rng.integers(0, 3, 15)])
    labels[rng.random(len(labels)) < 0.2] = rng.integers(0, 3)
    return dict(bboxes=torch.tensor(np.concatenate([jitter, noise]), dtype=torch.float32),
                scores=torch.tensor(rng.random(len(labels)), dtype=torch.float32),
                labels=torch.tensor(labels))


def samples(gt: dict, preds: dict) -> list[dict]:
    return [dict(img_id=img_id, ori_shape=(200, 200), pred_instances=pred,
                 gt_instances=gt_instances(gt, img_id, 0),
                 ignored_instances=gt_instances(gt, img_id, 1)) for img_id, pred in preds.items()]


def run_metric(metric: CocoMetric, sample_list: list[dict]) -> dict:
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, sample_list)
    return metric.evaluate(len(sample_list))


def reference_stats(gt_path, preds: dict, tmp_path) -> np.ndarray:
    """pycocotools' COCOeval run directly on the gt file and a results file."""
    dets = [dict(image_id=img_id, category_id=CAT_OF_LABEL[int(label)], score=float(score),
                 bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)])
            for img_id, p in preds.items()
            for (x1, y1, x2, y2), score, label in zip(p['bboxes'].double().tolist(),
                                                       p['scores'].double().tolist(), p['labels'])]
    res_path = tmp_path / 'ref_dets.json'
    res_path.write_text(json.dumps(dets))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        ev = COCOeval(coco, coco.loadRes(str(res_path)), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.fixture
def gt_file(tmp_path):
    gt = make_gt()
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(gt))
    return gt, path


def test_perfect_predictions_score_one(gt_file):
    gt, path = gt_file
    preds = {i: dict(gt_instances(gt, i, 0), scores=torch.ones(len(gt_instances(gt, i, 0)
                                                                    ['labels'])))
             for i in (1, 2, 5, 8)}
    for ann_file in (str(path), None):
        out = run_metric(METRICS.build(dict(type='CocoMetric', ann_file=ann_file)),
                         samples(gt, preds))
        assert out == {f'coco/bbox_{item}': pytest.approx(1.0) for item in SIX}


@pytest.mark.parametrize('backend', ['pycocotools', 'hotcoco'])
@pytest.mark.parametrize('seed', [0, 1])
def test_random_detections_equal_pycocotools(gt_file, tmp_path, seed, backend):
    gt, path = gt_file
    rng = np.random.default_rng(seed)
    preds = {i: random_preds(gt, i, rng) for i in (1, 2, 5, 8)}
    ref = reference_stats(path, preds, tmp_path)
    assert 0.05 < ref[0] < 0.95  # a non-trivial case
    items = SIX + ['AR@100', 'AR_s@1000', 'AR_m@1000', 'AR_l@1000']
    expected = dict(zip(items, [*ref[:6], ref[8], ref[9], ref[10], ref[11]]))
    for ann_file in (str(path), None):  # gt from the file, or from the samples
        out = run_metric(CocoMetric(ann_file=ann_file, metric_items=items, backend=backend),
                         samples(gt, preds))
        for item in items:
            assert out[f'coco/bbox_{item}'] == pytest.approx(expected[item], abs=1e-6)


@pytest.mark.parametrize('seed', [0, 1])
def test_hotcoco_gives_all_12_numbers_of_pycocotools(gt_file, seed):
    gt, path = gt_file
    rng = np.random.default_rng(seed)
    preds = {i: random_preds(gt, i, rng) for i in (1, 2, 5, 8)}
    items = list(CocoMetric._stat_index([100, 300, 1000]))
    assert len(items) == 12
    for ann_file in (str(path), None):
        ref, fast = (run_metric(CocoMetric(ann_file=ann_file, metric_items=items, backend=b),
                                samples(gt, preds)) for b in ('pycocotools', 'hotcoco'))
        assert 0.05 < ref['coco/bbox_mAP'] < 0.95
        assert fast.keys() == ref.keys()
        for key, value in ref.items():
            assert fast[key] == pytest.approx(value, abs=1e-6), key


def test_repeated_images_are_scored_once(gt_file, tmp_path):
    gt, path = gt_file
    rng = np.random.default_rng(3)
    preds = {i: random_preds(gt, i, rng) for i in (1, 2, 5, 8)}
    ref = reference_stats(path, preds, tmp_path)
    metric = CocoMetric(ann_file=str(path))
    metric.dataset_meta = dict(classes=CLASSES)
    sample_list = samples(gt, preds)
    metric.process({}, sample_list + sample_list[:2])  # e.g. a sampler's padding
    out = metric.compute_metrics(metric.results)
    assert out['bbox_mAP'] == pytest.approx(ref[0], abs=1e-6)


def test_classwise_matches_single_category_runs(gt_file, tmp_path):
    gt, path = gt_file
    rng = np.random.default_rng(5)
    preds = {i: random_preds(gt, i, rng) for i in (1, 2, 5, 8)}
    reference_stats(path, preds, tmp_path)  # writes ref_dets.json
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
        dets = coco.loadRes(str(tmp_path / 'ref_dets.json'))
        ev = COCOeval(coco, dets, 'bbox')
        ev.params.maxDets = [100, 300, 1000]
        ev.evaluate()
        ev.accumulate()
    table = classwise_ap(ev, [9, 4, 2])
    for row, cat_id in enumerate([9, 4, 2]):
        with contextlib.redirect_stdout(io.StringIO()):
            single = COCOeval(coco, dets, 'bbox')
            single.params.catIds = [cat_id]
            single.evaluate()
            single.accumulate()
            single.summarize()
        np.testing.assert_allclose(table[row], single.stats[:6], atol=1e-9)
    text = classwise_table(ev, [9, 4, 2], list(CLASSES))
    assert text.splitlines()[1].split('|')[1:-1] == [
        ' category ', ' AP    ', ' AP50  ', ' AP75  ', ' APs   ', ' APm   ', ' APl   ']
    assert f'| b        | {table[0, 0]:.3f} | {table[0, 1]:.3f} |' in text
    out = run_metric(CocoMetric(ann_file=str(path), classwise=True), samples(gt, preds))
    assert out['coco/bbox_mAP'] == pytest.approx(float(np.nanmean(table[:, 0])), abs=1e-9)


def test_format_only_writes_loadable_results(gt_file, tmp_path):
    gt, path = gt_file
    rng = np.random.default_rng(7)
    preds = {i: random_preds(gt, i, rng) for i in (1, 2, 5, 8)}
    prefix = tmp_path / 'sub' / 'test_dev'
    metric = CocoMetric(ann_file=str(path), format_only=True, outfile_prefix=str(prefix))
    assert run_metric(metric, samples(gt, preds)) == {}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
        dets = coco.loadRes(str(prefix) + '.bbox.json')
    assert len(dets.getAnnIds()) == sum(len(p['labels']) for p in preds.values())
    ann = dets.loadAnns(dets.getAnnIds(imgIds=[5]))[0]
    first = preds[5]
    x1, y1, x2, y2 = first['bboxes'][0].tolist()
    assert ann['category_id'] == CAT_OF_LABEL[int(first['labels'][0])]
    assert ann['bbox'] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-5)
    assert ann['score'] == pytest.approx(float(first['scores'][0]))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(metric='segm'), KeyError, 'segm'),
    (dict(metric_items=['mAP', 'mAP_xl']), KeyError, 'mAP_xl'),
    (dict(format_only=True), ValueError, 'outfile_prefix'),
    (dict(proposal_nums=(1, 10)), ValueError, 'proposal_nums'),
    (dict(ann_file='/no/such/gt.json'), FileNotFoundError, '/no/such/gt.json'),
])
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        CocoMetric(**kwargs)


def test_unknown_class_or_image(gt_file):
    gt, path = gt_file
    metric = CocoMetric(ann_file=str(path))
    metric.dataset_meta = dict(classes=('b', 'zebra'))
    with pytest.raises(ValueError, match='zebra'):
        metric.compute_metrics([dict(img_id=1, pred=dict(bboxes=np.zeros((0, 4)),
                                                          scores=np.zeros(0),
                                                          labels=np.zeros(0, int)))])
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(ValueError, match=r'image ids \[777\]'):
        metric.compute_metrics([dict(img_id=777, pred=dict(bboxes=np.zeros((0, 4)),
                                                            scores=np.zeros(0),
                                                            labels=np.zeros(0, int)))])


class _RecordingMetric(CocoMetric):
    """Writes the image ids that reach ``compute_metrics`` (rank 0 only) to a file."""

    def __init__(self, record: str, **kwargs):
        super().__init__(**kwargs)
        self.record = record

    def compute_metrics(self, results):
        with open(self.record, 'w') as file:
            json.dump([r['img_id'] for r in results], file)
        return super().compute_metrics(results)


def _dist_worker(rank: int, tmp: str, sample_list: list[dict]) -> None:
    from mmengine.dataset import DefaultSampler
    torch.distributed.init_process_group('gloo', init_method=f'file://{tmp}/pg', rank=rank,
                                         world_size=2)
    metric = _RecordingMetric(record=f'{tmp}/seen.json')
    metric.dataset_meta = dict(classes=CLASSES)
    shard = list(DefaultSampler(sample_list, shuffle=False))  # padded to 4: rank 1 repeats 0
    for index in shard:  # batches of one image
        metric.process({}, [sample_list[index]])
    out = metric.evaluate(size=len(sample_list))
    with open(f'{tmp}/out{rank}.json', 'w') as file:
        json.dump(dict(shard=shard, out=out), file)
    torch.distributed.destroy_process_group()


def test_two_ranks_score_every_image_once(tmp_path):
    gt = make_gt()
    rng = np.random.default_rng(11)
    sample_list = samples(gt, {i: random_preds(gt, i, rng) for i in (1, 2, 5)})
    torch.multiprocessing.spawn(_dist_worker, args=(str(tmp_path), sample_list), nprocs=2)
    results = [json.loads((tmp_path / f'out{r}.json').read_text()) for r in (0, 1)]
    assert [r['shard'] for r in results] == [[0, 2], [1, 0]]  # the padding repeats image 1
    assert sorted(json.loads((tmp_path / 'seen.json').read_text())) == [1, 2, 5]
    single = run_metric(CocoMetric(), sample_list)
    assert results[0]['out'] == results[1]['out'] == pytest.approx(single, abs=1e-12)
    assert 0.05 < single['coco/bbox_mAP'] < 0.95
