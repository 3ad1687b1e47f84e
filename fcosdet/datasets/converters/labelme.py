"""LabelMe JSON files to records.

Every ``*.json`` under the folder (sub-folders too) is one image: ``imagePath`` (relative to the
JSON's folder), ``imageHeight``, ``imageWidth`` and ``shapes``. A ``rectangle`` (two corners, in
any order) is its box; a ``polygon`` (or a shape without ``shape_type``, as old LabelMe wrote
them) is the bounding box of its points. LabelMe's points are continuous image coordinates, used
as they are (clipped to the image). Other shape types (circle, line, point, ...) are skipped
and counted.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .image_files import relative_name
from .records import Box, ConversionError, ImageRecord, clip_box

_POLYGON_TYPES = (None, 'polygon')


def _size(data: dict, key: str, path: Path) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConversionError(f'{path}: {key} is {value!r}, not a positive integer')
    return value


def _points(shape: dict, where: str) -> list[tuple[float, float]]:
    """The ``points`` of a shape as ``(x, y)`` floats."""
    points = shape.get('points')
    ok = isinstance(points, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in p) for p in points)
    if not ok:
        raise ConversionError(f'{where}: points must be a list of [x, y] numbers, got '
                              f'{points!r:.80}')
    return [(float(x), float(y)) for x, y in points]


def _shape_box(shape: object, where: str) -> tuple[str, tuple[float, ...]] | str:
    """Label and ``(x1, y1, x2, y2)`` of a rectangle or polygon; the type name of others."""
    if not isinstance(shape, dict) or not isinstance(shape.get('label'), str):
        raise ConversionError(f'{where}: not a shape with a "label" string ({shape!r:.80})')
    kind = shape.get('shape_type')
    if kind != 'rectangle' and kind not in _POLYGON_TYPES:
        return str(kind)
    label = shape['label'].strip()
    where = f'{where} ({label!r})'
    points = _points(shape, where)
    if kind == 'rectangle' and len(points) != 2:
        raise ConversionError(f'{where}: a rectangle needs 2 points, got {len(points)}')
    if kind != 'rectangle' and len(points) < 3:
        raise ConversionError(f'{where}: a polygon needs at least 3 points, got {len(points)}')
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return label, (min(xs), min(ys), max(xs), max(ys))


def read_labelme_file(path: Path, root: Path, classes: Sequence[str] | None,
                      skipped: Counter) -> ImageRecord:
    """The record of one LabelMe file; skipped shape types are counted in ``skipped``.

    Raises:
        ConversionError: Not a LabelMe file, a missing image, a bad shape (named by its index).
    """
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(f'{path}: malformed JSON: {err}') from err
    if not isinstance(data, dict) or not isinstance(data.get('shapes'), list):
        raise ConversionError(f'{path}: not a LabelMe file (no "shapes" list)')
    image_path = str(data.get('imagePath') or '').replace('\\', '/')
    image = path.parent / image_path
    if not image_path or not image.is_file():
        raise ConversionError(f'{path}: imagePath {image_path!r} is not a file ({image})')
    height, width = _size(data, 'imageHeight', path), _size(data, 'imageWidth', path)
    boxes = []
    for index, shape in enumerate(data['shapes']):
        found = _shape_box(shape, f'{path}: shapes[{index}]')
        if isinstance(found, str):
            skipped[found] += 1
            continue
        label, xyxy = found
        if classes is not None and label not in classes:
            raise ConversionError(f'{path}: shapes[{index}] ({label!r}) is not one of the '
                                  f'classes {list(classes)}')
        boxes.append(Box(label, clip_box(xyxy, width, height)))
    return ImageRecord(relative_name(image, root), height, width, boxes)


def read_labelme(root: str | Path, classes: Sequence[str] | None = None,
                 exclude: Sequence[str | Path] = ()) -> tuple[list[ImageRecord], Counter]:
    """Records of every LabelMe JSON under ``root`` (sorted by path), file names relative to
    ``root``, and the count of each skipped shape type.

    Args:
        root: The folder.
        classes: If given, every label must be one of them.
        exclude: Files to pass over (e.g. the output file, when it is inside ``root``).
    """
    root = Path(root)
    excluded = {Path(p).resolve() for p in exclude}
    files = [p for p in sorted(root.rglob('*.json')) if p.resolve() not in excluded]
    if not files:
        raise ConversionError(f'no .json file in {root}')
    skipped: Counter = Counter()
    records = [read_labelme_file(path, root, classes, skipped) for path in files]
    return records, skipped
