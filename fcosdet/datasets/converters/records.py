"""The format-neutral middle of every converter: images with named boxes, to and from COCO.

Each reader (YOLO, VOC, LabelMe, COCO) produces a list of :class:`ImageRecord`; each writer
(COCO, YOLO, VOC) consumes one. Boxes are absolute-pixel ``(x1, y1, x2, y2)`` in continuous
coordinates: the pixel at column 0 spans ``[0, 1)``, so a box covering columns 3..5 is
``x1=3, x2=6``. File names are relative to the dataset root the reader was given.

Shape letters: I images, A annotations, F categories (as in ``coco_ann``).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcosdet.utils.durable_files import write_text_durably

from ..coco_ann import CocoAnnotations, read_coco_json

_DECIMALS = 3  # COCO output keeps 1/1000 px: floating noise of the conversions goes away


class ConversionError(ValueError):
    """A bad input file; the message is one line naming the file (and line or object)."""


@dataclass
class Box:
    """One object: class name, box ``(x1, y1, x2, y2)`` in pixels, and whether it is ignored
    (COCO ``iscrowd``: neither a positive nor a false positive)."""

    name: str
    xyxy: tuple[float, float, float, float]
    ignore: bool = False


@dataclass
class ImageRecord:
    """One image: its file (relative to the dataset root), decoded size and boxes."""

    file_name: str
    height: int
    width: int
    boxes: list[Box] = field(default_factory=list)


def clip_box(xyxy: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """``(x1, y1, x2, y2)`` clipped to the image ``[0, width] x [0, height]``."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
            min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def class_list(records: Sequence[ImageRecord], classes: Sequence[str] | None) -> list[str]:
    """The classes to write: ``classes`` if given, else every box's name, sorted."""
    if classes is not None:
        return list(classes)
    return sorted({box.name for record in records for box in record.boxes})


def check_names(names: Sequence[str], source: str) -> list[str]:
    """``names`` as a list, after checking that there is one at least and none repeats.

    Raises:
        ConversionError: Naming ``source`` and the repeated names.
    """
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated or not names:
        problem = f'repeats the class names {repeated}' if repeated else 'names no class'
        raise ConversionError(f'{source} {problem}')
    return list(names)


def parse_classes(values: Sequence[str] | None) -> list[str] | None:
    """``--classes``: names, or one existing text file with a name per line; None if absent.

    Raises:
        ConversionError: If a name repeats or the list is empty.
    """
    if not values:
        return None
    if len(values) == 1 and os.path.isfile(values[0]):
        names = [line.strip() for line in Path(values[0]).read_text().splitlines()]
        names = [name for name in names if name]
        source = values[0]
    else:
        names, source = list(values), '--classes'
    return check_names(names, source)


def to_coco(records: Sequence[ImageRecord], classes: Sequence[str]) -> dict:
    """The COCO dict of ``records``: image ids 1..I, annotation ids 1..A, category ids 1..F
    in the order of ``classes``; ``bbox`` is ``[x, y, w, h]``, ``area`` is ``w * h``.

    Raises:
        ConversionError: If a box names a class that is not in ``classes``.
    """
    cat_id = {name: index + 1 for index, name in enumerate(classes)}
    images, annotations = [], []
    for img_id, record in enumerate(records, start=1):
        images.append(dict(id=img_id, file_name=record.file_name, height=int(record.height),
                           width=int(record.width)))
        for box in record.boxes:
            if box.name not in cat_id:
                raise ConversionError(f"{record.file_name}: class '{box.name}' is not in the "
                                      f'class list {list(classes)}')
            x1, y1, x2, y2 = box.xyxy
            xywh = [round(v, _DECIMALS) for v in (x1, y1, x2 - x1, y2 - y1)]
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id,
                                    category_id=cat_id[box.name], bbox=xywh,
                                    area=round(xywh[2] * xywh[3], _DECIMALS),
                                    iscrowd=int(box.ignore)))
    categories = [dict(id=i, name=name) for name, i in cat_id.items()]
    return dict(images=images, annotations=annotations, categories=categories)


def write_coco(coco: dict, out: str | Path) -> Path:
    """Write the COCO dict as JSON, atomically (parent folders created); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_durably(str(out), json.dumps(coco))
    return out


def summary(coco: dict) -> str:
    """One line: images (how many without boxes), boxes (how many ignored), classes."""
    with_boxes = {ann['image_id'] for ann in coco['annotations']}
    crowd = sum(ann['iscrowd'] for ann in coco['annotations'])
    return (f"{len(coco['images'])} images ({len(coco['images']) - len(with_boxes)} without "
            f"boxes), {len(coco['annotations'])} boxes ({crowd} ignored), "
            f"{len(coco['categories'])} classes {[c['name'] for c in coco['categories']]}")


def read_coco_records(path: str) -> tuple[list[ImageRecord], list[str]]:
    """Read a COCO file (checked as ``CocoDataset`` checks it) into records.

    Returns:
        The images in file order, each with its boxes in file order (``iscrowd`` → ignored),
        and the class names in the order of their category ids.
    """
    ann = CocoAnnotations.from_json(read_coco_json(path), path)
    order = np.argsort(ann.cat_ids, kind='stable')
    classes = check_names([ann.cat_names[i] for i in order], f'COCO annotation file {path}')
    per_image = ann.instances_per_image(ann.cat_ids[order])
    records = []
    for index, instances in enumerate(per_image):
        boxes = [Box(classes[inst['bbox_label']], tuple(inst['bbox']), bool(inst['ignore_flag']))
                 for inst in instances]
        records.append(ImageRecord(ann.file_names[index], int(ann.heights[index]),
                                   int(ann.widths[index]), boxes))
    return records, classes
