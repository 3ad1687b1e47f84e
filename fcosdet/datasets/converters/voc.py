"""Pascal VOC to and from records.

Layout: ``DIR/Annotations/<id>.xml``, ``DIR/JPEGImages/<filename>``, ``DIR/ImageSets/Main/S.txt``
(one id per line) for split ``S``.

Box convention: VOC's ``<bndbox>`` holds 1-based, inclusive pixel indices (the devkit's
``xmin=1`` is the first column, ``xmax`` the last column covered). In continuous coordinates
(pixel column ``c``, 0-based, spans ``[c, c+1)``) the box is
``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax``, so COCO ``w = xmax - xmin + 1``.
Writing inverts it: ``xmin = round(x1) + 1, xmax = round(x2)`` (integers, as VOC tools expect),
exact for boxes on pixel edges, within 0.5 px otherwise.

``<difficult>1`` objects: ``'ignore'`` (default) writes them with ``iscrowd: 1``, which fcosdet
and the COCO metric treat as VOC's evaluation treats difficult objects (neither a positive nor a
false positive); ``'drop'`` leaves them out; ``'keep'`` makes them ordinary boxes. Written back,
ignored boxes get ``<difficult>1``. The image size is read from the image file (EXIF orientation
applied), not from ``<size>``, which annotation tools often leave 0.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from .image_files import IMAGE_EXTENSIONS, decoded_size, output_name, place_image, relative_name
from .records import Box, ConversionError, ImageRecord, clip_box

DIFFICULT_MODES = ('ignore', 'drop', 'keep')
_CORNERS = ('xmin', 'ymin', 'xmax', 'ymax')


def split_ids(root: Path, split: str | None) -> list[tuple[str, str]]:
    """``(id, where)`` of the images: ``ImageSets/Main/<split>.txt`` lines, or every XML."""
    if split is None:
        xmls = sorted((root / 'Annotations').glob('*.xml'))
        if not xmls:
            raise ConversionError(f'no .xml file in {root / "Annotations"}')
        return [(p.stem, str(p)) for p in xmls]
    path = root / 'ImageSets' / 'Main' / f'{split}.txt'
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob('*.txt') if '_' not in p.stem)
        raise ConversionError(f'split file {path} not found (splits there: {found})')
    return [(line.split()[0], f'{path}:{number}')
            for number, line in enumerate(path.read_text().splitlines(), start=1) if line.split()]


def _image_path(root: Path, xml: ET.Element, image_id: str, where: str) -> Path:
    """``JPEGImages/<filename>``, else ``JPEGImages/<id>.<image extension>``."""
    folder = root / 'JPEGImages'
    filename = (xml.findtext('filename') or '').strip()
    candidates = ([folder / filename] if filename else []) + [
        folder / f'{image_id}{ext}' for ext in IMAGE_EXTENSIONS]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise ConversionError(f'{where}: image not found in {folder} (filename {filename!r}, '
                              f'id {image_id!r})')
    return found


def _parse_object(obj: ET.Element, where: str) -> tuple[str, tuple[float, ...], bool]:
    """Name, continuous ``(x1, y1, x2, y2)`` and difficult flag of one ``<object>``."""
    name = (obj.findtext('name') or '').strip()
    if not name:
        raise ConversionError(f'{where}: no <name>')
    where = f'{where} ({name!r})'
    box = obj.find('bndbox')
    if box is None:
        raise ConversionError(f'{where}: no <bndbox>')
    values = []
    for key in _CORNERS:
        text = (box.findtext(key) or '').strip()
        try:
            values.append(float(text))
        except ValueError:
            raise ConversionError(f'{where}: <{key}> is {text!r}, not a number') from None
        if not math.isfinite(values[-1]):
            raise ConversionError(f'{where}: <{key}> is {text!r}, not a finite number')
    xmin, ymin, xmax, ymax = values
    if xmax < xmin or ymax < ymin:
        raise ConversionError(f'{where}: xmin..xmax {xmin:g}..{xmax:g}, ymin..ymax '
                              f'{ymin:g}..{ymax:g}: a maximum is below its minimum')
    difficult = (obj.findtext('difficult') or '0').strip()
    if difficult not in ('0', '1'):
        raise ConversionError(f'{where}: <difficult> is {difficult!r}, not 0 or 1')
    return name, (xmin - 1, ymin - 1, xmax, ymax), difficult == '1'


def read_voc_file(path: Path, root: Path, image_id: str, difficult: str,
                  classes: Sequence[str] | None) -> tuple[ImageRecord, set[str]]:
    """The record of one annotation file (see the module docstring for the conventions) and
    the class names of all its objects (dropped difficult ones too).

    Raises:
        ConversionError: Malformed XML, a missing image, a bad object (named by its index),
            or a class not in ``classes``.
    """
    try:
        xml = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ConversionError(f'{path}: malformed XML: {err}') from err
    image = _image_path(root, xml, image_id, str(path))
    height, width = decoded_size(image)
    boxes, names = [], set()
    for index, obj in enumerate(xml.iter('object')):
        name, xyxy, is_difficult = _parse_object(obj, f'{path}: object {index}')
        names.add(name)
        if classes is not None and name not in classes:
            raise ConversionError(f'{path}: object {index} ({name!r}) is not one of the '
                                  f'classes {list(classes)}')
        if is_difficult and difficult == 'drop':
            continue
        boxes.append(Box(name, clip_box(xyxy, width, height),
                         ignore=is_difficult and difficult == 'ignore'))
    return ImageRecord(relative_name(image, root), height, width, boxes), names


def read_voc(root: str | Path, split: str | None = None, difficult: str = 'ignore',
             classes: Sequence[str] | None = None) -> tuple[list[ImageRecord], list[str]]:
    """Records of a VOC dataset, file names relative to ``root`` (``JPEGImages/...``), and
    the class list: ``classes``, else every object's name (dropped ones too), sorted."""
    if difficult not in DIFFICULT_MODES:
        raise ConversionError(f'difficult={difficult!r}: choose one of {DIFFICULT_MODES}')
    root = Path(root)
    records, names = [], set()
    for image_id, where in split_ids(root, split):
        path = root / 'Annotations' / f'{image_id}.xml'
        if not path.is_file():
            raise ConversionError(f'{where}: annotation file {path} not found')
        record, found = read_voc_file(path, root, image_id, difficult, classes)
        records.append(record)
        names |= found
    return records, list(classes) if classes is not None else sorted(names)


def voc_corners(xyxy: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Integer ``(xmin, ymin, xmax, ymax)`` of a continuous box (clipped), at least 1 px."""
    x1, y1, x2, y2 = (math.floor(v + 0.5) for v in clip_box(xyxy, width, height))
    return x1 + 1, y1 + 1, max(x2, x1 + 1), max(y2, y1 + 1)


def voc_xml(record: ImageRecord, filename: str) -> ET.ElementTree:
    """The annotation XML of one image record."""
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'JPEGImages'
    ET.SubElement(root, 'filename').text = filename
    size = ET.SubElement(root, 'size')
    for key, value in (('width', record.width), ('height', record.height), ('depth', 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, 'segmented').text = '0'
    for box in record.boxes:
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = box.name
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = str(int(box.ignore))
        corners = ET.SubElement(obj, 'bndbox')
        for key, value in zip(_CORNERS, voc_corners(box.xyxy, record.width, record.height)):
            ET.SubElement(corners, key).text = str(value)
    ET.indent(root)
    return ET.ElementTree(root)


def _check_other_splits(out: Path, split: str, ids: dict[str, str]) -> None:
    """Refuse ids that another split of ``out`` already has: their files would be replaced."""
    for other in sorted((out / 'ImageSets' / 'Main').glob('*.txt')):
        if other.stem == split:
            continue
        taken = {line.split()[0] for line in other.read_text().splitlines() if line.split()}
        clash = sorted(taken & set(ids))
        if clash:
            raise ConversionError(f"VOC id '{clash[0]}' ({ids[clash[0]]}) is already in {other} "
                                  f'({len(clash)} ids clash): write this split to another --out')


def write_voc(records: Sequence[ImageRecord], img_dir: str | Path, out: str | Path,
              split: str = 'train', symlink: bool = False) -> dict[str, int]:
    """Write ``out/JPEGImages/<name>`` (copies or links), ``out/Annotations/<stem>.xml`` and
    ``out/ImageSets/Main/<split>.txt``; the id of an image is the stem of its file name.

    Returns:
        Counts: ``images``, ``boxes`` (ignored boxes written as difficult).

    Raises:
        ConversionError: If two images have the same stem (VOC ids name files in one folder).
    """
    out, img_dir = Path(out), Path(img_dir)
    seen: dict[str, str] = {}
    for record in records:
        stem = Path(record.file_name).stem
        if stem in seen:
            raise ConversionError(f"images '{seen[stem]}' and '{record.file_name}' would both "
                                  f"be VOC id '{stem}'")
        seen[stem] = record.file_name
    _check_other_splits(out, split, seen)
    (out / 'Annotations').mkdir(parents=True, exist_ok=True)
    for record in records:
        name = output_name(record.file_name, 'annotation file')
        place_image(img_dir / name, out / 'JPEGImages' / name.name, symlink)
        voc_xml(record, name.name).write(out / 'Annotations' / f'{name.stem}.xml',
                                         encoding='utf-8')
    split_file = out / 'ImageSets' / 'Main' / f'{split}.txt'
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text(''.join(f'{stem}\n' for stem in seen))
    return dict(images=len(records), boxes=sum(len(r.boxes) for r in records))
