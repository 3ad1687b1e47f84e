"""Contents of the tiny COCO-format fixture files shared by the dataset tests."""
import copy
from pathlib import Path

import cv2
import numpy as np

# Categories out of id order, ids non-contiguous: labels follow id order (bird, cat, dog).
CATEGORIES = [dict(id=3, name='cat'), dict(id=7, name='dog'), dict(id=1, name='bird')]
IMAGES = [
    dict(id=10, file_name='a.png', width=64, height=48),   # landscape, three valid boxes
    dict(id=20, file_name='b.png', width=40, height=80),   # portrait, one box
    dict(id=30, file_name='c.png', width=48, height=48),   # crowd box only
    dict(id=40, file_name='d.png', width=48, height=48),   # no annotation
    dict(id=50, file_name='e.png', width=24, height=60),   # shorter side below 32
]
ANNOTATIONS = [
    dict(id=1, image_id=10, category_id=7, bbox=[2, 3, 10, 8], iscrowd=0),
    dict(id=2, image_id=10, category_id=1, bbox=[20, 5, 12, 20], iscrowd=0),
    dict(id=3, image_id=10, category_id=3, bbox=[0, 0, 5, 5], iscrowd=1),
    dict(id=4, image_id=10, category_id=3, bbox=[1, 1, 0, 4], iscrowd=0),    # zero width
    dict(id=5, image_id=10, category_id=3, bbox=[70, 50, 5, 5], iscrowd=0),  # outside
    dict(id=6, image_id=20, category_id=3, bbox=[4, 10, 8, 30], iscrowd=0),
    dict(id=7, image_id=30, category_id=7, bbox=[2, 2, 10, 10], iscrowd=1),
    dict(id=8, image_id=50, category_id=1, bbox=[2, 2, 10, 10], iscrowd=0),
]


def coco_dict() -> dict:
    """A fresh copy of the standard annotation file contents."""
    return copy.deepcopy(dict(images=IMAGES, annotations=ANNOTATIONS, categories=CATEGORIES))


def write_images(img_dir: Path, images: list[dict]) -> None:
    """Write one PNG per image entry: noise plus each box of ANNOTATIONS drawn in white."""
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for info in images:
        img = rng.integers(0, 100, (info['height'], info['width'], 3), dtype=np.uint8)
        cv2.imwrite(str(img_dir / info['file_name']), img)
