"""Tests of tools/dataset_converters/* and fcosdet.datasets.converters on hand-written files.

Expected boxes are worked out by hand from each format's convention (see the module
docstrings): YOLO ``x1 = (xc - w / 2) * W``; VOC ``x1 = xmin - 1, w = xmax - xmin + 1``;
LabelMe the extent of the points.
"""
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from fcosdet.datasets.converters import (
    ConversionError,
    parse_classes,
    read_labelme,
    read_voc,
    read_yolo,
    to_coco,
)
from fcosdet.datasets.demo_dataset import generate_demo_dataset
from fcosdet.utils.cli import run_cli

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'dataset_converters'


def load_tool(name: str):
    """Import a converter script as a module."""
    spec = importlib.util.spec_from_file_location(f'{name}_tool', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image(path: Path, width: int, height: int, orientation: int | None = None) -> Path:
    """Write a blank image (a JPEG with an EXIF orientation if given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new('RGB', (width, height))
    if orientation is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(path, exif=exif)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def boxes_of(coco: dict) -> dict[str, list[tuple[str, list[float], int]]]:
    """``file_name -> [(class name, bbox, iscrowd), ...]`` of a COCO dict."""
    names = {c['id']: c['name'] for c in coco['categories']}
    files = {i['id']: i['file_name'] for i in coco['images']}
    out = {name: [] for name in files.values()}
    for ann in coco['annotations']:
        out[files[ann['image_id']]].append((names[ann['category_id']], ann['bbox'],
                                            ann['iscrowd']))
    return out


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


# ------------------------------------------------------------------------------------ VOC
def voc_xml(filename: str, objects: str, size: str = '<width>0</width><height>0</height>') -> str:
    return (f'<annotation><filename>{filename}</filename><size>{size}</size>{objects}'
            '</annotation>')


def voc_object(name: str, corners: tuple, difficult: int = 0) -> str:
    xmin, ymin, xmax, ymax = corners
    return (f'<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>'
            f'<xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax>'
            '</bndbox></object>')


def voc_set(root: Path) -> Path:
    """a.jpg 100x50: a dog (1-based 11..30, 6..25) and a difficult cat; b.jpg: no object."""
    image(root / 'JPEGImages/a.jpg', 100, 50)
    image(root / 'JPEGImages/b.jpg', 30, 20)
    write(root / 'Annotations/a.xml', voc_xml('a.jpg', voc_object('dog', (11, 6, 30, 25))
                                              + voc_object('cat', (1, 1, 100, 50), 1)))
    write(root / 'Annotations/b.xml', voc_xml('b.jpg', ''))
    write(root / 'ImageSets/Main/train.txt', 'a\nb\n')
    return root


@pytest.mark.parametrize('mode, cat_box', [
    ('ignore', [('cat', [0.0, 0.0, 100.0, 50.0], 1)]),
    ('keep', [('cat', [0.0, 0.0, 100.0, 50.0], 0)]),
    ('drop', []),
])
def test_voc2coco_one_based_corners_and_difficult(tmp_path, mode, cat_box):
    root = voc_set(tmp_path / 'voc')
    out = tmp_path / 'out.json'
    load_tool('voc2coco').main([str(root), '--split', 'train', '--out', str(out),
                                '--difficult', mode])
    coco = json.loads(out.read_text())
    assert [c['name'] for c in coco['categories']] == ['cat', 'dog']  # sorted
    assert [(i['file_name'], i['width'], i['height']) for i in coco['images']] == [
        ('JPEGImages/a.jpg', 100, 50), ('JPEGImages/b.jpg', 30, 20)]  # from the images
    # xmin 11 (1-based) is 0-based column 10; xmax 30 is the last column: w = 30 - 11 + 1
    assert boxes_of(coco) == {'JPEGImages/a.jpg': [('dog', [10.0, 5.0, 20.0, 20.0], 0),
                                                   *cat_box],
                              'JPEGImages/b.jpg': []}


def test_voc2coco_class_order_from_classes_file(tmp_path):
    root = voc_set(tmp_path / 'voc')
    classes = write(tmp_path / 'classes.txt', 'dog\ncat\nbird\n')
    out = tmp_path / 'out.json'
    load_tool('voc2coco').main([str(root), '--out', str(out), '--classes', str(classes)])
    assert [c['name'] for c in json.loads(out.read_text())['categories']] == [
        'dog', 'cat', 'bird']


@pytest.mark.parametrize('xml, message', [
    (voc_xml('a.jpg', voc_object('dog', (30, 6, 11, 25))),
     "a.xml: object 0 ('dog'): xmin..xmax 30..11"),
    (voc_xml('a.jpg', voc_object('dog', (1, 1, 5, 5)) + voc_object('dog', (1, 'x', 5, 5))),
     "a.xml: object 1 ('dog'): <ymin> is 'x', not a number"),
    (voc_xml('a.jpg', voc_object('dog', (1, 1, 5, 5), difficult=2)),
     "a.xml: object 0 ('dog'): <difficult> is '2'"),
    (voc_xml('a.jpg', '<object><bndbox/></object>'), 'a.xml: object 0: no <name>'),
    (voc_xml('a.jpg', voc_object('dog', (1, 1, 5, 5))).replace('</annotation>', ''),
     'a.xml: malformed XML'),
    (voc_xml('zz.jpg', ''), "a.xml: image not found in .*JPEGImages \\(filename 'zz.jpg'"),
])
def test_voc_bad_file_names_file_and_object(tmp_path, xml, message):
    root = voc_set(tmp_path / 'voc')
    (root / 'JPEGImages/a.jpg').rename(root / 'JPEGImages/a0.jpg')  # found by filename only
    write(root / 'Annotations/a.xml', xml.replace('<filename>a.jpg', '<filename>a0.jpg'))
    with pytest.raises(ConversionError, match=message if '\\(' in message else re.escape(message)):
        read_voc(root, 'train')


def test_voc_bad_split_and_class(tmp_path):
    root = voc_set(tmp_path / 'voc')
    write(root / 'ImageSets/Main/val.txt', 'a\n\nmissing\n')
    with pytest.raises(ConversionError, match=r'val.txt:3: annotation file .*missing.xml'):
        read_voc(root, 'val')
    with pytest.raises(ConversionError, match=r"split file .*test.txt not found \(splits there: "
                                              r"\['train', 'val'\]\)"):
        read_voc(root, 'test')
    with pytest.raises(ConversionError, match=r"a.xml: object 0 \('dog'\) is not one of the "
                                              r"classes \['cat'\]"):
        read_voc(root, 'train', classes=['cat'])


def test_coco2voc_rounds_to_pixels_within_half_a_pixel(tmp_path):
    coco = {'images': [{'id': 1, 'file_name': 'a.png', 'width': 100, 'height': 50}],
            'categories': [{'id': 1, 'name': 'dog'}],
            'annotations': [
                {'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [10.2, 5.0, 19.6, 20.4]},
                {'id': 2, 'image_id': 1, 'category_id': 1, 'bbox': [0, 0, 4, 4], 'iscrowd': 1}]}
    ann = write(tmp_path / 'ann.json', json.dumps(coco))
    image(tmp_path / 'img/a.png', 100, 50)
    out = tmp_path / 'voc'
    load_tool('coco2voc').main([str(ann), str(tmp_path / 'img'), '--out', str(out)])
    xml = (out / 'Annotations/a.xml').read_text()
    # x 10.2..29.8 -> columns 10..29 (0-based) -> 11..30 (1-based); y 5..25.4 -> 6..25
    assert '<xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>25</ymax>' in re.sub(r'\s', '', xml)
    assert xml.count('<difficult>1</difficult>') == 1
    assert (out / 'ImageSets/Main/train.txt').read_text() == 'a\n'
    back = boxes_of(to_coco(*read_voc(out, 'train')))
    assert back == {'JPEGImages/a.png': [('dog', [10.0, 5.0, 20.0, 20.0], 0),
                                         ('dog', [0.0, 0.0, 4.0, 4.0], 1)]}
    with pytest.raises(ConversionError, match="VOC id 'a' .* is already in .*train.txt"):
        load_tool('coco2voc').main([str(ann), str(tmp_path / 'img'), '--out', str(out),
                                    '--split', 'val'])


# -------------------------------------------------------------------------------- LabelMe
def labelme(path: Path, image_path: str, shapes: list, height: int = 50,
            width: int = 100) -> Path:
    return write(path, json.dumps(dict(imagePath=image_path, imageHeight=height,
                                       imageWidth=width, shapes=shapes, imageData=None)))


def test_labelme2coco_rectangles_and_polygons(tmp_path):
    root = tmp_path / 'lm'
    image(root / 'imgs/a.jpg', 100, 50)
    labelme(root / 'ann/a.json', '..\\imgs\\a.jpg', [  # Windows separators, as LabelMe writes
        dict(label='dog', points=[[30, 25], [10.5, 5]], shape_type='rectangle'),
        dict(label='cat', points=[[1, 2], [8, 3], [4, 9]], shape_type='polygon'),
        dict(label='cat', points=[[60, 10], [70, 40], [90, 20]]),  # old files: no shape_type
        dict(label='cat', points=[[5, 5], [8, 8]], shape_type='circle'),
        dict(label='cat', points=[[95, 45], [120, 60]], shape_type='rectangle')])
    out = root / 'out.json'  # inside the folder: passed over on a second run
    for _ in range(2):
        load_tool('labelme2coco').main([str(root), '--out', str(out)])
    coco = json.loads(out.read_text())
    assert [c['name'] for c in coco['categories']] == ['cat', 'dog']
    assert coco['images'] == [{'id': 1, 'file_name': 'imgs/a.jpg', 'height': 50, 'width': 100}]
    assert boxes_of(coco) == {'imgs/a.jpg': [
        ('dog', [10.5, 5.0, 19.5, 20.0], 0), ('cat', [1.0, 2.0, 7.0, 7.0], 0),
        ('cat', [60.0, 10.0, 30.0, 30.0], 0), ('cat', [95.0, 45.0, 5.0, 5.0], 0)]}
    _, skipped = read_labelme(root, exclude=[out])
    assert skipped == {'circle': 1}


@pytest.mark.parametrize('data, message', [
    ({'imagePath': 'a.jpg'}, 'b.json: not a LabelMe file'),
    (dict(imagePath='nope.jpg', imageHeight=5, imageWidth=5, shapes=[]),
     "b.json: imagePath 'nope.jpg' is not a file"),
    (dict(imagePath='a.jpg', imageHeight=0, imageWidth=5, shapes=[]),
     'b.json: imageHeight is 0, not a positive integer'),
    (dict(imagePath='a.jpg', imageHeight=5, imageWidth=5,
          shapes=[dict(label='cat', points=[[1, 1], [2, 2], [3, 3]], shape_type='rectangle')]),
     "b.json: shapes[0] ('cat'): a rectangle needs 2 points, got 3"),
    (dict(imagePath='a.jpg', imageHeight=5, imageWidth=5,
          shapes=[dict(label='cat', points=[[1, 'x'], [2, 2], [3, 3]])]),
     "b.json: shapes[0] ('cat'): points must be a list of [x, y] numbers"),
    (dict(imagePath='a.jpg', imageHeight=5, imageWidth=5,
          shapes=[dict(label='bird', points=[[1, 1], [2, 2]], shape_type='rectangle')]),
     "b.json: shapes[0] ('bird') is not one of the classes ['cat']"),
])
def test_labelme_bad_file_names_file_and_shape(tmp_path, data, message):
    image(tmp_path / 'a.jpg', 5, 5)
    write(tmp_path / 'b.json', json.dumps(data))
    with pytest.raises(ConversionError, match=re.escape(message)):
        read_labelme(tmp_path, classes=['cat'])


# ---------------------------------------------------------------------- round trips, CLI
def corners(coco: dict) -> dict[str, list[tuple]]:
    """``basename -> [(name, x1, y1, x2, y2, iscrowd), ...]``: ids and folders aside."""
    return {Path(name).name: [(n, b[0], b[1], b[0] + b[2], b[1] + b[3], c) for n, b, c in boxes]
            for name, boxes in boxes_of(coco).items()}


def test_round_trips_keep_every_image_class_and_box(tmp_path):
    """COCO -> YOLO -> COCO and COCO -> VOC -> COCO on a generated demo set (within 0.5 px)."""
    root = generate_demo_dataset(tmp_path / 'demo', num_train=1, num_val=5, img_size=(96, 128),
                                 seed=3)
    ann = root / 'annotations/instances_val.json'
    orig = json.loads(ann.read_text())
    orig['annotations'][0]['bbox'][0] += 0.3  # one box off the pixel grid
    write(ann, json.dumps(orig))
    names = sorted(c['name'] for c in orig['categories'])
    for fmt, reader in (('yolo', 'yolo2coco'), ('voc', 'voc2coco')):
        out = tmp_path / fmt
        load_tool(f'coco2{fmt}').main([str(ann), str(root / 'val'), '--out', str(out),
                                       '--split', 'val'])
        back_file = tmp_path / f'{fmt}.json'
        load_tool(reader).main([str(out), '--split', 'val', '--out', str(back_file)])
        back = json.loads(back_file.read_text())
        assert sorted(c['name'] for c in back['categories']) == names
        want, got = corners(orig), corners(back)
        assert sorted(want) == sorted(got) and len(want) == 5
        tolerance = 0.5 if fmt == 'voc' else 1e-3  # VOC: integer pixels; YOLO: 6 decimals
        for name in want:
            assert [(b[0], b[5]) for b in got[name]] == [(b[0], b[5]) for b in want[name]]
            errors = [abs(g - w) for gb, wb in zip(got[name], want[name])
                      for g, w in zip(gb[1:5], wb[1:5])]
            assert max(errors, default=0.0) <= tolerance, (fmt, name)
        first = Path(orig['images'][0]['file_name']).name  # the shifted box: x1 + 0.3
        assert abs(got[first][0][1] - want[first][0][1]) == pytest.approx(
            0.3 if fmt == 'voc' else 0.0, abs=1e-3)


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
