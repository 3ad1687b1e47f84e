"""Tiny COCO-format datasets (JSON + PNG images) written into a temporary folder."""
import json
from pathlib import Path

import pytest
from coco_fixture_data import IMAGES, coco_dict, write_images
from mmengine import DefaultScope

import fcosdet.datasets  # noqa: F401  (registers the datasets and transforms)


@pytest.fixture(autouse=True)
def fcosdet_scope():
    """Build configs under fcosdet's registries."""
    with DefaultScope.overwrite_default_scope('fcosdet'):
        yield


@pytest.fixture
def make_coco(tmp_path):
    """Factory: write an annotation file (standard one, or ``content``) plus images."""

    def make(content: dict | str | None = None, with_images: bool = True) -> Path:
        root = tmp_path / 'data'
        (root / 'annotations').mkdir(parents=True, exist_ok=True)
        ann_file = root / 'annotations' / 'instances.json'
        content = coco_dict() if content is None else content
        ann_file.write_text(content if isinstance(content, str) else json.dumps(content))
        if with_images:
            write_images(root / 'images', IMAGES)
        return root

    return make
