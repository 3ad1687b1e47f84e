"""The demo generator's "large image, small objects" options: box_sides, objects_per_image."""
import json

import numpy as np
import pytest

from fcosdet.datasets.demo_dataset import generate_demo_dataset


def test_small_objects_option(tmp_path):
    root = generate_demo_dataset(tmp_path / 'small', num_train=2, num_val=1, img_size=(128, 160),
                                 box_sides=(8, 16), objects_per_image=(5, 7))
    coco = json.loads((root / 'annotations' / 'instances_train.json').read_text())
    boxes = np.array([a['bbox'] for a in coco['annotations']])
    per_image = np.bincount([a['image_id'] for a in coco['annotations']])[1:]
    assert ((per_image >= 4) & (per_image <= 7)).all()  # 5..7 drawn, rarely one fails to fit
    # scale sqrt(w h) <= 16 with aspect ratio in [1/2, 2]: a side <= 16 * sqrt(2); sides >= 8
    # drawn, a visible part of an occluded one may be smaller
    assert boxes[:, 2:].max() <= 16 * np.sqrt(2) + 1
    assert np.median(np.sqrt(boxes[:, 2] * boxes[:, 3])) >= 8
    meta = json.loads((root / 'demo_meta.json').read_text())
    assert meta['box_sides'] == [8, 16] and meta['objects_per_image'] == [5, 7]


def test_defaults_keep_the_old_parameters_and_bad_values_fail(tmp_path):
    root = generate_demo_dataset(tmp_path / 'default', num_train=1, num_val=1, img_size=(64, 64))
    meta = json.loads((root / 'demo_meta.json').read_text())
    assert set(meta) == {'version', 'num_train', 'num_val', 'img_size', 'seed'}
    with pytest.raises(ValueError, match=r'box_sides must be \(lo, hi\).*got \(4, 16\)'):
        generate_demo_dataset(tmp_path / 'bad', box_sides=(4, 16))
    with pytest.raises(ValueError, match='objects_per_image'):
        generate_demo_dataset(tmp_path / 'bad', objects_per_image=(5, 2))
