"""Tests of voc2coco.py, coco2voc.py and labelme2coco.py (tools/dataset_converters) and their
fcosdet.datasets.converters modules on hand-written files.

Expected boxes are worked out by hand from each format's convention (see the module
docstrings): VOC ``x1 = xmin - 1, w = xmax - xmin + 1``; LabelMe the extent of
the points. And the round trips COCO -> YOLO -> COCO, COCO -> VOC -> COCO.
"""
import json
import re
from pathlib import Path

import pytest

from fcosdet.datasets.converters import ConversionError, read_labelme, read_voc, to_coco
from fcosdet.datasets.demo_dataset import generate_demo_dataset

from ._converter_files import boxes_of, image, load_tool, write


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
        # VOC: whole pixels; YOLO: 6 decimals of x / W, then COCO's 3 decimals of x and of w
        tolerance = 0.5 if fmt == 'voc' else 2e-3
        for name in want:
            assert [(b[0], b[5]) for b in got[name]] == [(b[0], b[5]) for b in want[name]]
            errors = [abs(g - w) for gb, wb in zip(got[name], want[name])
                      for g, w in zip(gb[1:5], wb[1:5])]
            assert max(errors, default=0.0) <= tolerance, (fmt, name)
        first = Path(orig['images'][0]['file_name']).name  # the shifted box: x1 + 0.3
        assert abs(got[first][0][1] - want[first][0][1]) == pytest.approx(
            0.3 if fmt == 'voc' else 0.0, abs=2e-3)


