"""Bad annotation files and images: each gives one message naming the file and the entry."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import mmcv
import numpy as np
import pytest
from mmengine import DefaultScope

from fcosdet.datasets import CocoDataset
from fcosdet.datasets.transforms import LoadImageFromFile

from ._faults import REPO

IMAGES = [dict(id=1, file_name='a.png', width=40, height=30),
          dict(id=2, file_name='b.png', width=20, height=50)]
ANNOTATIONS = [dict(id=11, image_id=1, category_id=5, bbox=[2, 3, 10, 8], iscrowd=0),
               dict(id=12, image_id=2, category_id=5, bbox=[1, 1, 5, 5], iscrowd=0)]


@pytest.fixture(autouse=True)
def fcosdet_scope():
    with DefaultScope.overwrite_default_scope('fcosdet'):
        yield


def _write(root: Path, images=None, annotations=None, raw: str | None = None) -> Path:
    """An annotation file (``raw`` text, else the JSON of the given lists) and its images."""
    root.mkdir(parents=True, exist_ok=True)
    content = dict(images=IMAGES if images is None else images,
                   annotations=ANNOTATIONS if annotations is None else annotations,
                   categories=[dict(id=5, name='box')])
    ann_file = root / 'ann.json'
    ann_file.write_text(raw if raw is not None else json.dumps(content))
    for info in IMAGES:
        mmcv.imwrite(np.full((info['height'], info['width'], 3), 90, np.uint8),
                     str(root / info['file_name']))
    return ann_file


def _dataset(ann_file: Path, **kwargs) -> CocoDataset:
    return CocoDataset(ann_file=str(ann_file), data_prefix=dict(img=str(ann_file.parent)),
                       **kwargs)


@pytest.mark.parametrize('change, message', [
    (lambda a, i: a[1].update(id=11), 'duplicate annotation id 11'),
    (lambda a, i: i[1].update(id=1), 'duplicate image id 1'),
    (lambda a, i: a[1].pop('id'), "annotations[1] ({'image_id': 2, 'category_id': 5, 'bbox': "
                                  "[1, 1, 5, 5], 'iscrowd': 0}) has no \"id\" (1 annotation(s) "
                                  'lack one)'),
])
def test_id_errors_name_file_and_id(tmp_path, change, message):
    annotations, images = json.loads(json.dumps(ANNOTATIONS)), json.loads(json.dumps(IMAGES))
    change(annotations, images)
    ann_file = _write(tmp_path, images, annotations)
    with pytest.raises(ValueError) as err:
        _dataset(ann_file)
    assert str(err.value) == f'COCO annotation file {ann_file}: {message}'


def test_non_finite_boxes_dropped_with_a_warning_naming_them(tmp_path):
    raw = json.dumps(dict(images=IMAGES, categories=[dict(id=5, name='box')], annotations=[
        *ANNOTATIONS,
        dict(id=13, image_id=1, category_id=5, bbox=[0, 0, 'INF', 5], iscrowd=0),
        dict(id=14, image_id=2, category_id=5, bbox=['NAN', 1, 5, 5], iscrowd=0),
        dict(id=15, image_id=2, category_id=5, bbox=[1, 1, 0, 5], iscrowd=0)]))
    ann_file = _write(tmp_path, raw=raw.replace('"INF"', 'Infinity').replace('"NAN"', 'NaN'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        dataset = _dataset(ann_file)
    messages = [str(w.message) for w in caught if 'CocoDataset' in str(w.message)]
    assert messages == [
        f'CocoDataset: dropped 2 annotation(s) of {ann_file} whose bbox is not finite '
        '(NaN/Infinity): id(s) [13, 14]',
        f'CocoDataset: dropped 1 annotation(s) of {ann_file} with width or height <= 0 or '
        'lying wholly outside their image']
    boxes = [inst['bbox'] for i in range(len(dataset))
             for inst in dataset.get_data_info(i)['instances']]
    assert boxes == [[2.0, 3.0, 12.0, 11.0], [1.0, 1.0, 6.0, 6.0]]


def test_empty_datasets_say_which_file_and_why(tmp_path):
    no_images = _write(tmp_path / 'none', images=[], annotations=[])
    with pytest.raises(ValueError) as err:
        _dataset(no_images, test_mode=True)
    assert str(err.value) == f'CocoDataset: annotation file {no_images} has no images'
    all_dropped = _write(tmp_path / 'dropped', annotations=[
        dict(id=1, image_id=1, category_id=5, bbox=[50, 50, 5, 5], iscrowd=0)])
    with pytest.raises(ValueError) as err:
        _dataset(all_dropped, filter_cfg=dict(filter_empty_gt=True))
    assert str(err.value) == (
        f"CocoDataset: no image of {all_dropped} is left after filter_cfg={{'filter_empty_gt': "
        "True}: 2 image(s) with 1 annotation(s) in the file, 1 dropped as invalid boxes, none "
        "of the selected classes ('box',) left on a large enough image")


def test_decoded_size_differs_from_annotation(tmp_path):
    ann_file = _write(tmp_path)
    info = _dataset(ann_file).get_data_info(0)
    info.update(height=40, width=30)  # the annotation file's size, rotated
    with pytest.warns(UserWarning) as caught:
        LoadImageFromFile()(dict(info))
    message = (f'image {info["img_path"]} decodes to height x width 30 x 40, but its '
               'annotation file says 40 x 30')
    assert str(caught[0].message) == (f"{message} (rotated: EXIF orientation? "
                                      "color_type='color_ignore_orientation' keeps the stored "
                                      'pixels)')
    info.update(height=31)
    with pytest.raises(ValueError) as err:
        LoadImageFromFile(strict_size=True)(dict(info))
    assert str(err.value) == (f'image {info["img_path"]} decodes to height x width 30 x 40, '
                              'but its annotation file says 31 x 30')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = LoadImageFromFile(strict_size=True)(dict(info, height=30, width=40))
    assert out['img'].shape == (30, 40, 3)


def test_check_dataset_tool_finds_missing_and_resized_images(tiny_config, tiny_data_root,
                                                             tmp_path):
    import shutil
    data = Path(shutil.copytree(tiny_data_root, tmp_path / 'data'))
    val_images = sorted((data / 'val').iterdir())
    val_images[0].unlink()
    img = mmcv.imread(str(val_images[1]))
    mmcv.imwrite(img[:-2], str(val_images[1]))
    config = tmp_path / 'copy.py'
    config.write_text(Path(tiny_config).read_text().replace(str(tiny_data_root), str(data)))
    result = subprocess.run([sys.executable, 'tools/misc/check_dataset.py', str(config)],
                            cwd=REPO, capture_output=True, text=True,
                            env=dict(PYTHONPATH=str(REPO), PATH='/usr/bin:/bin'))
    assert result.returncode == 1
    h, w = img.shape[:2]
    assert result.stdout.splitlines() == [
        'train: 8 image(s) checked, 0 problem(s)',
        f'val: image file not found: {val_images[0]}',
        f'val: image {val_images[1]} is {h - 2} x {w} (height x width) when decoded, but its '
        f'annotation file says {h} x {w}',
        'val: 5 image(s) checked, 2 problem(s)',
        'test: same dataset as val']
    assert result.stderr.strip() == (f'check_dataset.py: error: 2 problem(s) in the datasets '
                                     f'of {config}')


def test_val_set_without_annotations_is_an_error_before_training(tmp_path):
    """Was: every score 0.0 and a "best" checkpoint saved on it. The evaluator is built when
    training starts (mmengine builds the val loop first), so this stops before iteration 1."""
    from fcosdet.evaluation import CocoMetric
    unlabelled = _write(tmp_path, annotations=[])
    with pytest.raises(ValueError) as err:
        CocoMetric(ann_file=str(unlabelled))
    assert str(err.value) == (
        f'CocoMetric: the ground truth {unlabelled} has no annotations, so there is nothing to '
        'score (a test set without labels? set format_only=True and outfile_prefix to only '
        'write the detections)')
    CocoMetric(ann_file=str(unlabelled), format_only=True, outfile_prefix=str(tmp_path / 'r'))
