"""Tests of yolo2coco.py and coco2yolo.py (tools/dataset_converters) and their
fcosdet.datasets.converters modules on hand-written files.

Expected boxes are worked out by hand from each format's convention (see the module
docstrings): YOLO ``x1 = (xc - w / 2) * W``.
"""
import json
import re
import sys
from pathlib import Path

import pytest

from fcosdet.datasets.converters import ConversionError, parse_classes, read_yolo
from fcosdet.utils.cli import run_cli

from ._converter_files import boxes_of, image, load_tool, write


# ----------------------------------------------------------------------------------- YOLO
def ultralytics_set(root: Path) -> Path:
    """100x50 a.png (a box and a polygon), 40x20 b.png without a label file; names a dict."""
    write(root / 'data.yaml', 'names:\n  0: cat\n  1: dog\ntrain: images/train\n')
    image(root / 'images/train/a.png', 100, 50)
    image(root / 'images/train/b.png', 40, 20)
    write(root / 'labels/train/a.txt', '0 0.5 0.5 0.2 0.4\n\n1 0.1 0.2 0.3 0.2 0.2 0.6\n')
    return root


def test_yolo2coco_ultralytics_layout(tmp_path):
    root = ultralytics_set(tmp_path / 'yolo')
    out = tmp_path / 'out.json'
    load_tool('yolo2coco').main([str(root), '--split', 'train', '--out', str(out)])
    coco = json.loads(out.read_text())
    assert coco['categories'] == [{'id': 1, 'name': 'cat'}, {'id': 2, 'name': 'dog'}]
    assert [(i['file_name'], i['width'], i['height']) for i in coco['images']] == [
        ('images/train/a.png', 100, 50), ('images/train/b.png', 40, 20)]
    # box: centre (50, 25), size 20 x 20; polygon: x 10..30, y 10..30
    assert boxes_of(coco) == {'images/train/a.png': [('cat', [40.0, 15.0, 20.0, 20.0], 0),
                                                     ('dog', [10.0, 10.0, 20.0, 20.0], 0)],
                              'images/train/b.png': []}
    assert coco['annotations'][0]['area'] == 400.0


def test_yolo_uses_the_decoded_size_and_a_flat_folder(tmp_path):
    """An EXIF-rotated JPEG (stored 40 x 20, orientation 6) decodes 20 wide, 40 high."""
    root = tmp_path / 'flat'
    write(root / 'classes.txt', 'cat\n')
    image(root / 'r.jpg', 40, 20, orientation=6)
    write(root / 'r.txt', '0 0.5 0.25 0.5 0.5\n')
    records, names, found_root = read_yolo(root)
    assert names == ['cat'] and found_root == root
    assert (records[0].file_name, records[0].height, records[0].width) == ('r.jpg', 40, 20)
    assert records[0].boxes[0].xyxy == (5.0, 0.0, 15.0, 20.0)


def test_yolo_yaml_path_and_txt_list(tmp_path):
    """``path`` is the root; a split may be a .txt list of images (relative to the list)."""
    root = tmp_path / 'ds'
    write(tmp_path / 'cfg' / 'data.yaml', f'path: {root}\nnames: [cat]\nval: val.txt\n')
    image(root / 'images/v/c.png', 10, 10)
    write(root / 'labels/v/c.txt', '0 0.5 0.5 1 1\n')
    write(root / 'val.txt', './images/v/c.png\n')
    records, _, found_root = read_yolo(tmp_path / 'cfg', 'val')
    assert found_root == root and records[0].file_name == 'images/v/c.png'
    assert records[0].boxes[0].xyxy == (0.0, 0.0, 10.0, 10.0)


def test_yolo_roboflow_export(tmp_path):
    """Roboflow writes ``val: ../valid/images`` beside ``valid/images`` and ``valid/labels``."""
    root = tmp_path / 'rf'
    write(root / 'data.yaml', 'names: [cat, dog]\nnc: 2\nval: ../valid/images\n')
    image(root / 'valid/images/c.jpg', 20, 10)
    write(root / 'valid/labels/c.txt', '1 0.25 0.5 0.5 1\n')
    records, _, _ = read_yolo(root, 'val')
    assert records[0].file_name == 'valid/images/c.jpg'
    assert records[0].boxes[0].name == 'dog' and records[0].boxes[0].xyxy == (0.0, 0.0, 10.0, 10.0)


@pytest.mark.parametrize('label, message', [
    ('0 0.5 0.5 0.2 0.4\n2 0.5 0.5 0.1 0.1\n', 'a.txt:2: class id 2 is not one of 0..1'),
    ('0 0.5 0.5 0.1\n', 'a.txt:1: 4 fields, expected 5'),
    ('0 0.5 0.5 0.1 0.1 0.3\n', 'a.txt:1: 6 fields'),
    ('0 0.5 abc 0.1 0.1\n', "a.txt:1: 'abc' is not a number"),
    ('0.5 0.5 0.5 0.1 0.1\n', 'a.txt:1: class id 0.5 is not one of'),
    ('\n0 0.5 1.5 0.1 0.1\n', 'a.txt:2: 1.5 is outside [0, 1]'),
    ('0 0.5 nan 0.1 0.1\n', "a.txt:1: 'nan' is not a finite number"),
])
def test_yolo_bad_label_line_names_file_and_line(tmp_path, label, message):
    root = ultralytics_set(tmp_path / 'yolo')
    write(root / 'labels/train/a.txt', label)
    with pytest.raises(ConversionError, match=r'^\S*labels/train/' + re.escape(message)):
        read_yolo(root, 'train')


@pytest.mark.parametrize('yaml_text, split, message', [
    ('names: [cat]\nnc: 2\n', 'train', "'nc' is 2 but 'names' has 1"),
    ('names: {0: cat, 2: dog}\n', 'train', "the keys of 'names' must be 0..1"),
    ('nc: 1\n', 'train', "no 'names'"),
    ('names: [cat, dog]\ntrain: images/train\nval: images/val\n', None,
     "names splits ['train', 'val']: choose one with --split"),
    ('names: [cat]\n', 'test', 'split folder'),
    ('names: [cat]\ntrain: nowhere\n', 'train', 'nowhere is neither a folder nor'),
])
def test_yolo_bad_dataset_is_one_line_naming_the_file(tmp_path, yaml_text, split, message):
    root = ultralytics_set(tmp_path / 'yolo')
    write(root / 'data.yaml', yaml_text)
    with pytest.raises(ConversionError, match=re.escape(message)) as err:
        read_yolo(root, split)
    assert '\n' not in str(err.value)


@pytest.mark.parametrize('names, message', [
    ('names: [cat, dog, cat]\n', "data.yaml repeats the class names ['cat']"),
    ('names: []\n', "'names' must be a non-empty list or dict"),
])
def test_yolo_class_names_are_checked(tmp_path, names, message):
    root = ultralytics_set(tmp_path / 'yolo')
    write(root / 'data.yaml', names)
    with pytest.raises(ConversionError, match=re.escape(message)):
        read_yolo(root, 'train')
    with pytest.raises(ConversionError, match=re.escape("--classes repeats the class names")):
        parse_classes(['a', 'b', 'a'])


def test_yolo_without_class_list(tmp_path):
    image(tmp_path / 'a.png', 4, 4)
    with pytest.raises(ConversionError, match='no class list in .*classes.txt'):
        read_yolo(tmp_path)


def test_coco2yolo_writes_ultralytics_layout(tmp_path):
    """Classes numbered by category id; crowd boxes left out; boxes clipped to the image."""
    coco = {'images': [{'id': 1, 'file_name': 'sub/a.png', 'width': 100, 'height': 50},
                       {'id': 2, 'file_name': 'b.png', 'width': 40, 'height': 20}],
            'categories': [{'id': 7, 'name': 'dog'}, {'id': 3, 'name': 'cat'}],
            'annotations': [
                {'id': 1, 'image_id': 1, 'category_id': 7, 'bbox': [40, 15, 20, 20]},
                {'id': 2, 'image_id': 1, 'category_id': 3, 'bbox': [90, 40, 20, 20]},
                {'id': 3, 'image_id': 1, 'category_id': 3, 'bbox': [0, 0, 5, 5], 'iscrowd': 1}]}
    ann = write(tmp_path / 'ann.json', json.dumps(coco))
    image(tmp_path / 'img/sub/a.png', 100, 50)
    image(tmp_path / 'img/b.png', 40, 20)
    out = tmp_path / 'yolo'
    load_tool('coco2yolo').main([str(ann), str(tmp_path / 'img'), '--out', str(out),
                                 '--split', 'val', '--symlink'])
    assert (out / 'labels/val/sub/a.txt').read_text() == (
        '1 0.500000 0.500000 0.200000 0.400000\n'  # dog: class 1 (category id 7 > 3)
        '0 0.950000 0.900000 0.100000 0.200000\n')  # cat, clipped to x 90..100, y 40..50
    assert (out / 'labels/val/b.txt').read_text() == ''
    assert (out / 'images/val/sub/a.png').is_symlink()
    assert (out / 'data.yaml').read_text() == (
        'names:\n  0: cat\n  1: dog\nnc: 2\nval: images/val\n')
    records, names, _ = read_yolo(out, 'val')  # and back
    assert names == ['cat', 'dog'] and len(records) == 2
    coco['categories'][0]['name'] = 'wolf'
    write(ann, json.dumps(coco))
    with pytest.raises(ConversionError, match="data.yaml names classes \\['cat', 'dog'\\]"):
        load_tool('coco2yolo').main([str(ann), str(tmp_path / 'img'), '--out', str(out)])



def test_cli_error_is_one_line_and_exit_status_1(tmp_path, monkeypatch, capsys):
    root = ultralytics_set(tmp_path / 'yolo')
    write(root / 'labels/train/a.txt', '0 0.5 0.5 0.2 0.4\n5 0.5 0.5 0.1 0.1\n')
    tool = load_tool('yolo2coco')
    monkeypatch.setattr(sys, 'argv', ['yolo2coco.py', str(root), '--split', 'train', '--out',
                                      str(tmp_path / 'out.json')])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tool.main)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        f'yolo2coco.py: error: {root}/labels/train/a.txt:2: class id 5 is not one of 0..1 '
        '(2 class names)\n')
    assert not (tmp_path / 'out.json').exists()
