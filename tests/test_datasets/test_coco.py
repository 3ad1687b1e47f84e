import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from coco_fixture_data import coco_dict

from fcosdet.datasets import CocoDataset
from fcosdet.registry import DATASETS
from fcosdet.utils.cli import CLIError

_TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'misc' / 'check_dataset.py'
_spec = importlib.util.spec_from_file_location('check_dataset', _TOOL)
CHECK_DATASET = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(CHECK_DATASET)

TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 96), keep_ratio=True),
    dict(type='PackDetInputs'),
]


def build(root, **kwargs):
    cfg = dict(type='CocoDataset', data_root=str(root), ann_file='annotations/instances.json',
               data_prefix=dict(img='images/'), test_mode=True)
    cfg.update(kwargs)
    with pytest.warns(UserWarning, match='dropped 2 annotation'):
        return DATASETS.build(cfg)


def test_loads_boxes_labels_and_crowd(make_coco):
    root = make_coco()
    ds = build(root)
    assert isinstance(ds, CocoDataset)
    assert ds.metainfo['classes'] == ('bird', 'cat', 'dog')  # file's categories in id order
    assert len(ds.metainfo['palette']) == 3
    assert ds.cat_ids == [1, 3, 7]
    assert len(ds) == 5
    first = ds.get_data_info(0)
    assert first['img_id'] == 10 and (first['height'], first['width']) == (48, 64)
    assert first['img_path'] == str(root / 'images' / 'a.png')
    # xywh -> xyxy; dog=2, bird=0, crowd cat=1 ignored; the two bad boxes are gone
    assert first['instances'] == [
        dict(bbox=[2.0, 3.0, 12.0, 11.0], bbox_label=2, ignore_flag=0),
        dict(bbox=[20.0, 5.0, 32.0, 25.0], bbox_label=0, ignore_flag=0),
        dict(bbox=[0.0, 0.0, 5.0, 5.0], bbox_label=1, ignore_flag=1),
    ]
    assert ds.get_data_info(1)['instances'] == [
        dict(bbox=[4.0, 10.0, 12.0, 40.0], bbox_label=1, ignore_flag=0)]
    assert ds.get_data_info(3)['instances'] == []
    assert ds.get_cat_ids(0) == [0, 1, 2]


def test_custom_classes_select_and_order(make_coco):
    ds = build(make_coco(), metainfo=dict(classes=('dog', 'cat')))
    assert ds.metainfo['classes'] == ('dog', 'cat')
    assert ds.cat_ids == [7, 3]
    assert len(ds.metainfo['palette']) == 2
    instances = ds.get_data_info(0)['instances']
    labels = [(inst['bbox_label'], inst['ignore_flag']) for inst in instances]
    assert labels == [(0, 0), (1, 1)]  # bird dropped, dog -> 0, crowd cat -> 1
    assert ds.get_data_info(4)['instances'] == []  # its only box is a bird


def test_filter_empty_and_small_images_in_training(make_coco):
    ds = build(make_coco(), test_mode=False, filter_cfg=dict(filter_empty_gt=True, min_size=32))
    # crowd-only (30) and empty (40) images go, and 50 whose shorter side is 24
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == [10, 20]
    unfiltered = build(make_coco(), test_mode=False, filter_cfg=None)
    assert len(unfiltered) == 5


def test_pipeline_packs_crowd_as_ignored(make_coco):
    ds = build(make_coco(), pipeline=TRAIN_PIPELINE)
    item = ds[0]
    assert item['inputs'].shape == (3, 96, 128) and item['inputs'].dtype == torch.uint8
    sample = item['data_samples']
    assert sample.img_id == 10 and sample.scale_factor == (2.0, 2.0)
    assert torch.equal(sample.gt_instances.labels, torch.tensor([2, 0]))
    assert torch.allclose(sample.gt_instances.bboxes,
                          torch.tensor([[4.0, 6, 24, 22], [40, 10, 64, 50]]))
    assert torch.equal(sample.ignored_instances.labels, torch.tensor([1]))
    assert torch.allclose(sample.ignored_instances.bboxes, torch.tensor([[0.0, 0, 10, 10]]))


def _bad(content_fn):
    content = coco_dict()
    content_fn(content)
    return content


@pytest.mark.parametrize('content, error, message', [
    ('{"images": [', ValueError, 'malformed JSON'),
    ('[1, 2]', ValueError, 'top level must be a JSON object'),
    (_bad(lambda c: c.pop('images')), ValueError, "missing top-level key 'images'"),
    (_bad(lambda c: c.pop('annotations')), ValueError, "missing top-level key 'annotations'"),
    (_bad(lambda c: c.pop('categories')), ValueError, "missing top-level key 'categories'"),
    (_bad(lambda c: c['annotations'][5].update(category_id=99)), ValueError,
     r'annotation id 6 \(annotations\[5\]\) has category_id 99'),
    (_bad(lambda c: c['annotations'][2].update(image_id=12345)), ValueError,
     r'annotation id 3 \(annotations\[2\]\) has image_id 12345'),
    (_bad(lambda c: c['annotations'][1].pop('bbox')), ValueError,
     r"annotations\[1\] .* lacks key\(s\) \['bbox'\]"),
    (_bad(lambda c: c['annotations'][1].update(bbox=[1, 2, 3])), ValueError,
     r'bbox of annotations\[1\] is \[1, 2, 3\]'),
    (_bad(lambda c: c['images'][2].pop('width')), ValueError,
     r"images\[2\] .* lacks key\(s\) \['width'\]"),
    (_bad(lambda c: c['images'].append(dict(c['images'][0]))), ValueError, 'duplicate image id 10'),
    # 3.9 was truncated to 3 (cat) silently
    (_bad(lambda c: c['annotations'][5].update(category_id=3.9)), ValueError,
     r'annotations category_id of annotation id 6 \(annotations\[5\]\) is 3.9, not an integer'),
    (_bad(lambda c: c['annotations'][3].update(image_id=float('nan'))), ValueError,
     r'annotations image_id of annotation id 4 \(annotations\[3\]\) is nan, not an integer'),
    (_bad(lambda c: c['categories'][1].update(id=7.5)), ValueError,
     r'categories id of entry 1 is 7.5, not an integer'),
])
def test_bad_annotation_file_names_file_and_entry(make_coco, content, error, message):
    root = make_coco(content, with_images=False)
    with pytest.raises(error, match=message) as info:
        DATASETS.build(dict(type='CocoDataset', ann_file=str(root / 'annotations/instances.json')))
    assert 'instances.json' in str(info.value)


def test_whole_number_float_ids_are_integers(make_coco):
    content = coco_dict()
    content['annotations'][5].update(category_id=7.0, image_id=20.0)  # cat -> dog
    ds = build(make_coco(content))
    assert ds.get_data_info(1)['instances'] == [
        dict(bbox=[4.0, 10.0, 12.0, 40.0], bbox_label=2, ignore_flag=0)]


def test_check_dataset_reports_float_category_id(make_coco, capsys):
    content = coco_dict()
    content['annotations'][5].update(category_id=3.9)
    root = make_coco(content, with_images=False)
    config = root / 'config.py'
    config.write_text(f"val_dataloader = dict(dataset=dict(type='CocoDataset', data_root='{root}', "
                      "ann_file='annotations/instances.json', data_prefix=dict(img='images/')))\n")
    with pytest.raises(CLIError, match='1 problem'):
        CHECK_DATASET.main([str(config), '--splits', 'val'])
    assert capsys.readouterr().out.splitlines() == [
        f'val: COCO annotation file {root}/annotations/instances.json: annotations category_id '
        'of annotation id 6 (annotations[5]) is 3.9, not an integer',
        'val: 0 image(s) checked, 1 problem(s)']


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.json'):
        CocoDataset(ann_file=str(tmp_path / 'nothere.json'))


def test_unknown_class_name(make_coco):
    root = make_coco(with_images=False)
    with pytest.raises(ValueError, match=r"class 'horse' of metainfo\['classes'\] is not a cat"):
        CocoDataset(ann_file=str(root / 'annotations/instances.json'),
                    metainfo=dict(classes=('cat', 'horse')))


def test_unknown_filter_key(make_coco):
    with pytest.raises(KeyError, match='min_sise'):
        CocoDataset(ann_file='x.json', filter_cfg=dict(min_sise=3))


def test_missing_and_corrupt_images_fail_with_path(make_coco):
    root = make_coco()
    (root / 'images' / 'b.png').unlink()
    (root / 'images' / 'c.png').write_bytes(b'not a png at all')
    ds = build(root, pipeline=TRAIN_PIPELINE)
    with pytest.raises(FileNotFoundError, match='b.png'):
        ds[1]
    with pytest.raises(ValueError, match='c.png'):
        ds[2]


def test_many_images_vectorised(tmp_path):
    """5k images, 20k boxes: the mapping stays exact (ids shuffled, annotations interleaved)."""
    rng = np.random.default_rng(0)
    img_ids = rng.permutation(np.arange(1, 5001) * 3).tolist()
    images = [dict(id=i, file_name=f'{i}.jpg', width=100, height=80) for i in img_ids]
    owners = rng.choice(img_ids, 20000).tolist()
    anns = [dict(id=k, image_id=o, category_id=(o % 2) + 5, bbox=[1, 2, (o % 7) + 1, 3])
            for k, o in enumerate(owners)]
    path = tmp_path / 'big.json'
    path.write_text(json.dumps(dict(images=images, annotations=anns,
                                    categories=[dict(id=5, name='a'), dict(id=6, name='b')])))
    ds = CocoDataset(ann_file=str(path), test_mode=True, serialize_data=False)
    assert len(ds) == 5000
    for index in (0, 1234, 4999):
        info = ds.get_data_info(index)
        own = [a for a in anns if a['image_id'] == info['img_id']]
        assert [inst['bbox'] for inst in info['instances']] == [
            [1.0, 2.0, 2.0 + (a['image_id'] % 7), 5.0] for a in own]
        assert [inst['bbox_label'] for inst in info['instances']] == [
            a['category_id'] - 5 for a in own]
