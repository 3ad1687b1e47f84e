"""YOLO (Ultralytics) labels to and from records.

A label line is ``class x_center y_center width height``, each coordinate divided by the image
width or height (so in [0, 1]); a line ``class x1 y1 x2 y2 x3 y3 ...`` (a segmentation polygon)
stands for its bounding box, as Ultralytics reads it for detection. An image without a label
file (or with an empty one) has no objects. Absolute boxes use the image's decoded size
(EXIF orientation applied), read from the file header:
``x1 = (x_center - width / 2) * W``, ``x2 = (x_center + width / 2) * W`` (clipped to the image).
Written back with 6 decimals: within ``W / 2e6`` px of the original.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import yaml

from .image_files import decoded_size, output_name, place_image, relative_name
from .records import Box, ConversionError, ImageRecord, clip_box
from .yolo_layout import YAML_NAMES, find_source, label_path, read_data_yaml

_DECIMALS = 6


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConversionError(f'{where}: {text!r} is not a number') from None
    if not math.isfinite(value):
        raise ConversionError(f'{where}: {text!r} is not a finite number')
    return value


def parse_label_line(line: str, num_classes: int,
                     where: str) -> tuple[int, tuple[float, float, float, float]] | None:
    """Class index and normalised ``(x1, y1, x2, y2)`` of one label line; None if blank.

    Args:
        line: The text of the line.
        num_classes: Number of class names (class ids are 0..num_classes-1).
        where: ``file:line`` for messages.

    Raises:
        ConversionError: A wrong number of fields, a field that is not a number, a class id out
            of range or not an integer, a coordinate outside [0, 1].
    """
    fields = line.split()
    if not fields:
        return None
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        raise ConversionError(f'{where}: {len(fields)} fields, expected 5 (class x_center '
                              'y_center width height) or a polygon (class x1 y1 x2 y2 x3 y3 ...)')
    values = [_number(text, where) for text in fields]
    class_id = values[0]
    if class_id != int(class_id) or not 0 <= class_id < num_classes:
        raise ConversionError(f'{where}: class id {fields[0]} is not one of 0..{num_classes - 1} '
                              f'({num_classes} class names)')
    bad = next((text for text, v in zip(fields[1:], values[1:]) if not 0.0 <= v <= 1.0), None)
    if bad is not None:
        raise ConversionError(f'{where}: {bad} is outside [0, 1] (YOLO coordinates are divided '
                              'by the image size)')
    if len(fields) == 5:
        cx, cy, w, h = values[1:]
        return int(class_id), (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    xs, ys = values[1::2], values[2::2]
    return int(class_id), (min(xs), min(ys), max(xs), max(ys))


def read_label_file(path: Path, names: Sequence[str], height: int, width: int) -> list[Box]:
    """The boxes of one label file, in pixels of a ``height x width`` image (none if absent)."""
    if not path.is_file():
        return []
    boxes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parsed = parse_label_line(line, len(names), f'{path}:{number}')
        if parsed is not None:
            label, (x1, y1, x2, y2) = parsed
            xyxy = clip_box((x1 * width, y1 * height, x2 * width, y2 * height), width, height)
            boxes.append(Box(names[label], xyxy))
    return boxes


def read_yolo(root: str | Path,
              split: str | None = None) -> tuple[list[ImageRecord], list[str], Path]:
    """Records of a YOLO dataset (see :mod:`.yolo_layout` for the layouts).

    Returns:
        The images sorted by path, the class names (data.yaml or classes.txt order) and the
        dataset root (``path`` of data.yaml, else ``root``), to which file names are relative.
    """
    source = find_source(Path(root), split)
    records = []
    for image in source.images:
        height, width = decoded_size(image)
        boxes = read_label_file(label_path(image), source.names, height, width)
        records.append(ImageRecord(relative_name(image, source.root), height, width, boxes))
    return records, source.names, source.root


def yolo_line(label: int, xyxy: Sequence[float], height: int, width: int) -> str:
    """``class x_center y_center width height`` of a pixel box (clipped to the image)."""
    x1, y1, x2, y2 = clip_box(xyxy, width, height)
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width,
              (y2 - y1) / height)
    return ' '.join([str(label)] + [f'{v:.{_DECIMALS}f}' for v in values])


def _update_data_yaml(out: Path, names: list[str], split: str) -> Path:
    """Write ``out/data.yaml`` (names as ``{0: name}``, ``split: images/<split>``), keeping the
    other splits of an existing one, whose names must then be the same."""
    path = out / YAML_NAMES[0]
    data: dict = {}
    if path.is_file():
        data, existing, _ = read_data_yaml(path)
        if existing != names:
            raise ConversionError(f'{path} names classes {existing}, the annotation file '
                                  f'{names}: use another --out folder')
    data.update(names=dict(enumerate(names)), nc=len(names))
    data[split] = f'images/{split}'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_yolo(records: Sequence[ImageRecord], classes: Sequence[str], img_dir: str | Path,
               out: str | Path, split: str = 'train', symlink: bool = False) -> dict[str, int]:
    """Write the Ultralytics layout: ``out/images/<split>/<file_name>`` (copies or symbolic
    links of ``img_dir/<file_name>``), ``out/labels/<split>/<stem>.txt`` (one per image, empty
    for an image without objects) and ``out/data.yaml``.

    Ignored (crowd) boxes have no YOLO form and are left out; boxes are clipped to the image and
    those left empty are left out.

    Returns:
        Counts: ``images``, ``boxes`` written, ``ignored`` and ``empty`` left out.
    """
    out, img_dir = Path(out), Path(img_dir)
    label_of = {name: index for index, name in enumerate(classes)}
    counts = dict(images=0, boxes=0, ignored=0, empty=0)
    stems = [Path(r.file_name).with_suffix('').as_posix() for r in records]
    clash = next((s for s, n in Counter(stems).items() if n > 1), None)
    if clash is not None:
        raise ConversionError(f'several images would have the label file {clash}.txt: '
                              f'{[r.file_name for r, s in zip(records, stems) if s == clash]}')
    for record in records:
        name = output_name(record.file_name, 'annotation file')
        place_image(img_dir / name, out / 'images' / split / name, symlink)
        lines = []
        for box in record.boxes:
            x1, y1, x2, y2 = clip_box(box.xyxy, record.width, record.height)
            if box.ignore or x2 <= x1 or y2 <= y1:
                counts['ignored' if box.ignore else 'empty'] += 1
                continue
            lines.append(yolo_line(label_of[box.name], box.xyxy, record.height, record.width))
        label = (out / 'labels' / split / name).with_suffix('.txt')
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(''.join(line + '\n' for line in lines))
        counts['images'] += 1
        counts['boxes'] += len(lines)
    _update_data_yaml(out, list(classes), split)
    return counts
