"""tools/dataset_converters/slice_coco.py on a hand-made annotation: the tile grid, clipping,
--min-visible, --empty-ratio, the written crops, and one-line errors."""
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_tool():
    path = REPO / 'tools' / 'dataset_converters' / 'slice_coco.py'
    spec = importlib.util.spec_from_file_location('slice_coco_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slice_coco = _load_tool()

# One 160 x 100 (w x h) image; tiles 60 x 100 (h x w) without overlap: x 0, 60 (160 - 100),
# y 0, 40 (100 - 60) -> tiles A (0, 0), B (60, 0), C (0, 40), D (60, 40).
BOXES = [[10, 10, 20, 20],    # b1: in A only
         [50, 20, 40, 10],    # b2: whole in A; B holds x 60..90 of 50..90 (0.75)
         [120, 50, 20, 20]]   # b3: B holds y 50..60 of 50..70 (0.5); whole in D


def _dataset(tmp_path: Path, width: int = 160) -> tuple[Path, Path, np.ndarray]:
    img = np.random.default_rng(0).integers(0, 256, (100, width, 3), dtype=np.uint8)
    img_dir = tmp_path / 'imgs'
    img_dir.mkdir(parents=True)
    cv2.imwrite(str(img_dir / 'big.png'), img)
    coco = dict(images=[dict(id=5, file_name='big.png', width=160, height=100)],
                annotations=[dict(id=i + 1, image_id=5, category_id=3 if i else 1, bbox=b,
                                  area=b[2] * b[3], iscrowd=0) for i, b in enumerate(BOXES)],
                categories=[dict(id=1, name='a'), dict(id=3, name='b')])
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(coco))
    return ann, img_dir, img


def _run(tmp_path: Path, *flags: str) -> tuple[dict, Path, np.ndarray]:
    ann, img_dir, img = _dataset(tmp_path)
    out = tmp_path / 'out'
    slice_coco.main([str(ann), str(img_dir), str(out), '--size', '60', '100',
                     '--overlap', '0', *flags])
    return json.loads((out / 'annotations.json').read_text()), out, img


def _by_tile(coco: dict) -> dict:
    return {tuple(im['tile']): [(a['bbox'], a['category_id']) for a in coco['annotations']
                                if a['image_id'] == im['id']] for im in coco['images']}


def test_clipping_min_visible_and_crops(tmp_path):
    coco, out, img = _run(tmp_path, '--min-visible', '0.5', '--empty-ratio', '0')
    assert _by_tile(coco) == {
        (0, 0, 100, 60): [([10, 10, 20, 20], 1), ([50, 20, 40, 10], 3)],
        (60, 0, 160, 60): [([0, 20, 30, 10], 3), ([60, 50, 20, 10], 3)],  # 0.75 and 0.5 kept
        (60, 40, 160, 100): [([60, 10, 20, 20], 3)],
    }  # C (0, 40) has no box and --empty-ratio 0 drops it
    assert [a['area'] for a in coco['annotations']] == [400, 400, 300, 200, 400]
    assert len({a['id'] for a in coco['annotations']}) == 5
    assert coco['categories'] == [dict(id=1, name='a'), dict(id=3, name='b')]
    for im in coco['images']:
        x1, y1, x2, y2 = im['tile']
        assert im['file_name'] == f'big_{x1}_{y1}.png' and im['original_image_id'] == 5
        assert (im['width'], im['height']) == (100, 60)
        np.testing.assert_array_equal(cv2.imread(str(out / 'images' / im['file_name'])),
                                      img[y1:y2, x1:x2])


def test_stricter_min_visible_empties_a_tile(tmp_path):
    coco, _, _ = _run(tmp_path, '--min-visible', '0.8', '--empty-ratio', '0')
    # b2 (0.75) and b3 (0.5) leave B, which is now empty and dropped
    assert _by_tile(coco) == {(0, 0, 100, 60): [([10, 10, 20, 20], 1), ([50, 20, 40, 10], 3)],
                              (60, 40, 160, 100): [([60, 10, 20, 20], 3)]}


def test_empty_ratio_keeps_that_share_of_empty_tiles(tmp_path):
    # 3 tiles with boxes; ratio 0.34 allows floor(1.02) = 1 empty tile: C
    coco, _, _ = _run(tmp_path, '--min-visible', '0.5', '--empty-ratio', '0.34')
    assert _by_tile(coco)[(0, 40, 100, 100)] == [] and len(coco['images']) == 4
    coco, _, _ = _run(tmp_path / 'second', '--min-visible', '0.5', '--empty-ratio', '0.33')
    # floor(0.99) = 0 empty tiles
    assert len(coco['images']) == 3


@pytest.mark.parametrize('flags, match', [
    (['--size', '0', '100'], 'slice size'),
    (['--size', '60', '100', '--overlap', '1'], 'overlap'),
    (['--size', '60', '100', '--min-visible', '0'], 'min-visible'),
    (['--size', '60', '100', '--empty-ratio', '-1'], 'empty-ratio'),
])
def test_bad_flags(tmp_path, capsys, flags, match):
    with pytest.raises(SystemExit):
        slice_coco.main(['a.json', 'imgs', str(tmp_path), *flags])
    assert match in capsys.readouterr().err


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(slice_coco.CLIError, match='not found: .*missing.json'):
        slice_coco.main([str(tmp_path / 'missing.json'), str(tmp_path), str(tmp_path / 'o'),
                         '--size', '60', '100'])
    ann, img_dir, _ = _dataset(tmp_path, width=150)  # the file is 150 wide, the json says 160
    with pytest.raises(slice_coco.CLIError, match=r'big.png is 150x100 .* says 160x100'):
        slice_coco.main([str(ann), str(img_dir), str(tmp_path / 'o'), '--size', '60', '100'])
