"""Tests of the generated demo dataset: determinism, COCO validity, box accuracy, atomicity."""
import colorsys
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from fcosdet.datasets import demo_dataset
from fcosdet.datasets.demo_dataset import (
    DEMO_CATEGORY_IDS,
    DEMO_CLASSES,
    generate_demo_dataset,
    render_demo_image,
)

SMALL = dict(num_train=4, num_val=2, img_size=(96, 128))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file()}


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a = _files(generate_demo_dataset(tmp_path / 'a', seed=3, **SMALL))
    b = _files(generate_demo_dataset(tmp_path / 'b', seed=3, **SMALL))
    c = _files(generate_demo_dataset(tmp_path / 'c', seed=4, **SMALL))
    assert len(a) == 4 + 2 + 2 + 1  # images, two json files, the marker
    assert a == b
    assert a.keys() == c.keys()
    for name in a:
        if name != 'demo_meta.json':
            assert a[name] != c[name], name


def test_coco_validity_sizes_and_classes(tmp_path):
    root = generate_demo_dataset(tmp_path / 'demo', num_train=30, num_val=3, seed=0)
    coco = COCO(str(root / 'annotations' / 'instances_train.json'))
    assert [c['id'] for c in coco.dataset['categories']] == list(DEMO_CATEGORY_IDS)
    assert [c['name'] for c in coco.dataset['categories']] == list(DEMO_CLASSES)
    assert len(coco.getImgIds()) == 30
    anns = coco.dataset['annotations']
    assert len({a['id'] for a in anns}) == len(anns)
    for img_info in coco.dataset['images']:
        img = cv2.imread(str(root / 'train' / img_info['file_name']))
        assert img.shape == (img_info['height'], img_info['width'], 3)
        assert 0.75 * 256 - 1 <= img_info['height'] <= 256
        assert 0.75 * 320 - 1 <= img_info['width'] <= 320
    for a in anns:
        x, y, w, h = a['bbox']
        img_info = coco.imgs[a['image_id']]
        assert x >= 0 and y >= 0 and w >= 1 and h >= 1
        assert x + w <= img_info['width'] and y + h <= img_info['height']
        assert a['area'] == w * h and a['iscrowd'] == 0
    areas = np.array([a['area'] for a in anns])
    # COCO area ranges: small < 32^2 <= medium < 96^2 <= large; all well represented.
    assert (areas < 32**2).sum() >= 10
    assert ((areas >= 32**2) & (areas < 96**2)).sum() >= 10
    assert (areas >= 96**2).sum() >= 5
    assert np.sqrt(areas.min()) < 16
    counts = np.bincount([a['category_id'] for a in anns])
    assert all(counts[cid] >= 10 for cid in DEMO_CATEGORY_IDS)
    assert len(COCO(str(root / 'annotations' / 'instances_val.json')).getImgIds()) == 3


def _hue_deg(rgb: np.ndarray) -> float:
    return colorsys.rgb_to_hsv(*(rgb / 255.0))[0] * 360.0


@pytest.mark.parametrize('index', range(24))
def test_drawn_object_fills_exactly_its_box(index):
    # Streams are independent, so removing the object leaves background, clutter and noise.
    with_obj, objects = render_demo_image(7, 0, index, 200, 240, num_objects=1)
    without, none = render_demo_image(7, 0, index, 200, 240, num_objects=0)
    assert len(objects) == 1 and none == []
    changed = np.any(with_obj != without, axis=2)
    ys, xs = np.nonzero(changed)
    x1, y1, x2, y2 = objects[0].bbox
    # A changed pixel lies inside the box; the box is its extent (1 px slack for pixels whose
    # object colour happens to equal the background after noise and clipping).
    assert xs.min() >= x1 and ys.min() >= y1 and xs.max() < x2 and ys.max() < y2
    assert xs.min() - x1 <= 1 and ys.min() - y1 <= 1 and x2 - 1 - xs.max() <= 1
    assert y2 - 1 - ys.max() <= 1
    # The fill ratio identifies the drawn shape, so the label matches what is drawn.
    name = DEMO_CLASSES[objects[0].label]
    fill = changed.sum() / ((x2 - x1) * (y2 - y1))
    if min(x2 - x1, y2 - y1) >= 20:
        lo, hi = dict(ellipse=(0.72, 0.86), rectangle=(0.97, 1.0), triangle=(0.2, 0.56),
                      cross=(0.4, 0.72))[name]
        assert lo <= fill <= hi, (name, fill)
    # The mean colour (noise averages out) is the class hue within the jitter.
    hue = _hue_deg(with_obj[changed].astype(np.float64).mean(0))
    gap = abs((hue - demo_dataset._CLASS_HUES[objects[0].label] + 180) % 360 - 180)
    assert gap <= demo_dataset._HUE_JITTER + 8, (name, hue)


def test_labels_cover_every_class_in_the_single_object_renders():
    labels = {render_demo_image(7, 0, i, 200, 240, num_objects=1)[1][0].label for i in range(24)}
    assert labels == set(range(len(DEMO_CLASSES)))


def test_overlapping_objects_get_boxes_of_their_visible_part():
    img, objects = render_demo_image(0, 1, 5, 256, 320, num_objects=8)
    background, _ = render_demo_image(0, 1, 5, 256, 320, num_objects=0)
    changed = np.any(img != background, axis=2)
    covered = np.zeros_like(changed)
    for obj in objects:
        x1, y1, x2, y2 = obj.bbox
        covered[y1:y2, x1:x2] = True
    assert len(objects) >= 4
    assert not np.any(changed & ~covered)  # every drawn pixel belongs to some box


def test_second_call_reuses_and_overwrite_regenerates(tmp_path):
    root = generate_demo_dataset(tmp_path / 'demo', **SMALL)
    ann = root / 'annotations' / 'instances_train.json'
    stamp, inode = ann.stat().st_mtime_ns, root.stat().st_ino
    assert generate_demo_dataset(str(root), **SMALL) == root
    assert ann.stat().st_mtime_ns == stamp and root.stat().st_ino == inode
    before = _files(root)
    generate_demo_dataset(root, overwrite=True, **SMALL)
    assert root.stat().st_ino != inode  # a freshly built folder was renamed into place
    assert _files(root) == before
    assert sorted(os.listdir(tmp_path)) == ['demo']  # no temp or trash folders left


def test_existing_data_with_other_parameters_is_an_error(tmp_path):
    root = generate_demo_dataset(tmp_path / 'demo', **SMALL)
    with pytest.raises(ValueError, match='num_train'):
        generate_demo_dataset(root, **{**SMALL, 'num_train': 5})
    generate_demo_dataset(root, overwrite=True, **{**SMALL, 'num_train': 5})
    assert len(list((root / 'train').iterdir())) == 5


def test_foreign_or_empty_folder(tmp_path):
    (tmp_path / 'empty').mkdir()
    assert (generate_demo_dataset(tmp_path / 'empty', **SMALL) / 'demo_meta.json').is_file()
    (tmp_path / 'foreign').mkdir()
    (tmp_path / 'foreign' / 'x.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='foreign'):
        generate_demo_dataset(tmp_path / 'foreign', **SMALL)


def test_crash_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(root, split, *args):
        if split == 'val':
            raise RuntimeError('disk full')
        return write(root, split, *args)

    write = demo_dataset._write_split
    monkeypatch.setattr(demo_dataset, '_write_split', fail)
    with pytest.raises(RuntimeError, match='disk full'):
        generate_demo_dataset(tmp_path / 'demo', **SMALL)
    assert os.listdir(tmp_path) == []


def test_losing_the_race_to_another_process_is_fine(tmp_path, monkeypatch):
    root = generate_demo_dataset(tmp_path / 'demo', **SMALL)
    before = _files(root)
    # As if this process checked before the other one finished: it builds, then rename fails.
    monkeypatch.setattr(demo_dataset, '_existing_matches', lambda root, params: False)
    assert generate_demo_dataset(root, **SMALL) == root
    assert _files(root) == before
    assert os.listdir(tmp_path) == ['demo']
    meta = json.loads((root / 'demo_meta.json').read_text())
    assert meta['img_size'] == [96, 128] and meta['seed'] == 0


@pytest.mark.parametrize('key, value', [('num_train', 0), ('num_val', 1.5), ('seed', -1),
                                        ('img_size', (32, 300)), ('img_size', 256)])
def test_bad_arguments_name_the_key(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        generate_demo_dataset(tmp_path / 'demo', **{**SMALL, key: value})
    assert not (tmp_path / 'demo').exists()


def test_demo_coco_dataset_generates_then_loads_through_the_coco_pipeline(tmp_path):
    from fcosdet.registry import DATASETS
    root = tmp_path / 'fcos_demo'
    cfg = dict(type='DemoCocoDataset', data_root=str(root),
               demo_cfg=dict(num_train=3, num_val=2, img_size=(96, 128), seed=5),
               ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
               pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                         dict(type='PackDetInputs')])
    dataset = DATASETS.build(cfg)
    assert (root / 'demo_meta.json').is_file() and len(dataset) == 3
    assert dataset.metainfo['classes'] == DEMO_CLASSES
    assert dataset.cat2label == {1: 0, 3: 1, 5: 2, 7: 3}
    coco = json.loads((root / 'annotations' / 'instances_train.json').read_text())
    anns = [a for a in coco['annotations'] if a['image_id'] == 2]
    sample = dataset[1]
    img = cv2.imread(str(root / 'train' / '000002.png'))
    assert tuple(sample['inputs'].shape) == (3, *img.shape[:2])
    expected = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
    assert sample['data_samples'].gt_instances.bboxes.tolist() == expected
    assert sample['data_samples'].gt_instances.labels.tolist() == [
        DEMO_CATEGORY_IDS.index(a['category_id']) for a in anns]
    with pytest.raises(KeyError, match='overwrite'):
        DATASETS.build({**cfg, 'demo_cfg': dict(overwrite=True)})


def test_create_demo_dataset_tool(tmp_path, monkeypatch, capsys):
    import runpy
    import sys
    tool = Path(__file__).parents[2] / 'tools' / 'misc' / 'create_demo_dataset.py'
    root = tmp_path / 'demo'
    argv = ['create_demo_dataset.py', '--data-root', str(root), '--num-train', '3',
            '--num-val', '2', '--img-size', '96', '128', '--seed', '2']
    monkeypatch.setattr(sys, 'argv', argv)
    runpy.run_path(str(tool), run_name='__main__')
    assert 'train: 3 images' in capsys.readouterr().out
    assert _files(root) == _files(generate_demo_dataset(tmp_path / 'ref', num_train=3,
                                                        num_val=2, img_size=(96, 128), seed=2))
    monkeypatch.setattr(sys, 'argv', argv[:-1] + ['3'])  # another seed, no --overwrite
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(tool), run_name='__main__')
    assert exc.value.code == 2 and 'seed' in capsys.readouterr().err
