"""Reading and checking a COCO-format annotation file, vectorised over all annotations.

Shape letters: I images of the file, A annotations of the file, F categories of the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from mmengine import fileio

_IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
_CATEGORY_KEYS = ('id', 'name')


def read_coco_json(path: str, backend_args: dict | None = None) -> dict:
    """Read an annotation file and check that it is a JSON object.

    Args:
        path: File path (any mmengine file backend).
        backend_args: mmengine file backend arguments.

    Returns:
        The decoded JSON object.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it cannot be read or decoded, or is not a JSON object.
    """
    if not fileio.exists(path, backend_args=backend_args):
        raise FileNotFoundError(f'COCO annotation file not found: {path}')
    try:
        raw = json.loads(fileio.get_text(path, backend_args=backend_args))
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f'COCO annotation file {path} cannot be read: {err}') from err
    except json.JSONDecodeError as err:
        raise ValueError(f'COCO annotation file {path} is malformed JSON: {err}') from err
    if not isinstance(raw, dict):
        raise ValueError(f'COCO annotation file {path}: top level must be a JSON object, '
                         f'got {type(raw).__name__}')
    return raw


def _section(raw: dict, key: str, path: str) -> list:
    """Return ``raw[key]``, which must be a list."""
    if key not in raw:
        raise ValueError(f"COCO annotation file {path}: missing top-level key '{key}'")
    if not isinstance(raw[key], list):
        raise ValueError(f"COCO annotation file {path}: '{key}' must be a list")
    return raw[key]


def _columns(entries: list, keys: tuple[str, ...], section: str, path: str) -> list[list]:
    """Extract one Python list per key from a list of dicts, naming the first bad entry."""
    try:
        return [[entry[key] for entry in entries] for key in keys]
    except (KeyError, TypeError):
        for index, entry in enumerate(entries):
            missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise ValueError(f'COCO annotation file {path}: {section}[{index}] '
                                 f'({entry!r:.80}) lacks key(s) {missing}') from None
        raise


def _numeric(values: list, dtype: type, what: str, path: str) -> np.ndarray:
    """Convert a column to a numeric array, naming the first entry that is not a number."""
    try:
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        for index, value in enumerate(values):
            try:
                np.asarray(value, dtype=dtype)
            except (TypeError, ValueError):
                raise ValueError(f'COCO annotation file {path}: {what} of entry {index} is '
                                 f'{value!r:.80}, not a number') from None
        raise


def _integers(values: list, what: str, path: str,
              ann_ids: np.ndarray | None = None) -> np.ndarray:
    """An id/size column as int64, refusing non-integer numbers (``5.9``) instead of truncating.

    Args:
        values: The column.
        what: ``'<section> <key>'``, for messages.
        path: The file, for messages.
        ann_ids: int64 [A], to name an annotation by its id (annotation columns only).

    Raises:
        ValueError: Naming the file, the entry (annotation id) and the value.
    """
    try:
        direct = np.asarray(values)
    except ValueError:  # ragged: named by _numeric below
        direct = np.asarray([])
    if direct.dtype.kind in 'iu' and len(direct) == len(values):  # all ints: nothing to check
        return direct.astype(np.int64)
    array = _numeric(values, np.float64, what, path)
    # whole-number floats (5.0) are fine; the float64 check is exact below 2**53
    bad = np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))
    if bad.size:
        index = int(bad[0])
        entry = (f'annotation id {ann_ids[index]} (annotations[{index}])' if ann_ids is not None
                 else f'entry {index}')
        raise ValueError(f'COCO annotation file {path}: {what} of {entry} is '
                         f'{values[index]!r:.80}, not an integer')
    return _numeric(values, np.int64, what, path)


def _first_unknown(values: np.ndarray, known: np.ndarray) -> int | None:
    """Index of the first value not in ``known``, or None."""
    bad = np.flatnonzero(~np.isin(values, known))
    return int(bad[0]) if bad.size else None


@dataclass
class CocoAnnotations:
    """The checked contents of a COCO-format file as flat arrays.

    Attributes:
        path: The file, for messages.
        img_ids: int64 [I]; file_names: I names; heights, widths: int64 [I].
        cat_ids: int64 [F]; cat_names: F names.
        ann_ids: int64 [A] (the ``id`` field, or the list index when absent).
        ann_img_ids, ann_cat_ids: int64 [A].
        boxes: float64 [A, 4] ``(x1, y1, x2, y2)``.
        crowd: bool [A].
    """

    path: str
    img_ids: np.ndarray
    file_names: list[str]
    heights: np.ndarray
    widths: np.ndarray
    cat_ids: np.ndarray
    cat_names: list[str]
    ann_ids: np.ndarray
    ann_img_ids: np.ndarray
    ann_cat_ids: np.ndarray
    boxes: np.ndarray
    crowd: np.ndarray

    @classmethod
    def from_json(cls, raw: dict, path: str) -> CocoAnnotations:
        """Check and convert a decoded COCO file.

        Args:
            raw: The decoded JSON object.
            path: The file it came from, for messages.

        Returns:
            The parsed annotations (boxes not yet filtered).

        Raises:
            ValueError: Naming the file and the offending entry.
        """
        images = _section(raw, 'images', path)
        annotations = _section(raw, 'annotations', path)
        categories = _section(raw, 'categories', path)
        img_ids, file_names, widths, heights = _columns(images, _IMAGE_KEYS, 'images', path)
        cat_ids, cat_names = _columns(categories, _CATEGORY_KEYS, 'categories', path)
        ann_img_ids, ann_cat_ids, bboxes = _columns(
            annotations, ('image_id', 'category_id', 'bbox'), 'annotations', path)
        ann_ids = _annotation_ids(annotations, path)
        parsed = cls(
            path=path,
            img_ids=_integers(img_ids, 'images id', path),
            file_names=[str(name) for name in file_names],
            heights=_integers(heights, 'images height', path),
            widths=_integers(widths, 'images width', path),
            cat_ids=_integers(cat_ids, 'categories id', path),
            cat_names=[str(name) for name in cat_names],
            ann_ids=ann_ids,
            ann_img_ids=_integers(ann_img_ids, 'annotations image_id', path, ann_ids),
            ann_cat_ids=_integers(ann_cat_ids, 'annotations category_id', path, ann_ids),
            boxes=_parse_bboxes(bboxes, path),
            crowd=np.asarray([a.get('iscrowd', 0) for a in annotations], dtype=bool),
        )
        parsed._check_references()
        return parsed

    def _check_references(self) -> None:
        """Every id unique where it must be, every annotation refers to a known image/category."""
        # pycocotools indexes annotations by id: a repeated one silently replaces another
        for ids, what in ((self.img_ids, 'image id'), (self.cat_ids, 'category id'),
                          (self.ann_ids, 'annotation id')):
            unique, counts = np.unique(ids, return_counts=True)
            if (counts > 1).any():
                raise ValueError(f'COCO annotation file {self.path}: duplicate {what} '
                                 f'{int(unique[counts > 1][0])}')
        for values, known, key in ((self.ann_img_ids, self.img_ids, 'image_id'),
                                   (self.ann_cat_ids, self.cat_ids, 'category_id')):
            index = _first_unknown(values, known)
            if index is not None:
                raise ValueError(
                    f'COCO annotation file {self.path}: annotation id {self.ann_ids[index]} '
                    f'(annotations[{index}]) has {key} {int(values[index])}, which is not in '
                    f"the file's {'images' if key == 'image_id' else 'categories'}")

    def cat_id_of(self, name: str, key: str) -> int:
        """The category id named ``name``.

        Args:
            name: Category name.
            key: The config key the name came from, for messages.

        Returns:
            The file's category id.

        Raises:
            ValueError: If no category, or several, has this name.
        """
        matches = [i for i, cat_name in enumerate(self.cat_names) if cat_name == name]
        if len(matches) != 1:
            problem = 'is not a category' if not matches else 'names several categories'
            raise ValueError(f"class '{name}' of {key} {problem} of COCO annotation file "
                             f'{self.path} (its categories: {self.cat_names})')
        return int(self.cat_ids[matches[0]])

    def drop_invalid_boxes(self) -> tuple[list[int], int]:
        """Remove annotations whose box is not finite, is empty or lies wholly outside its image.

        Returns:
            The annotation ids of the non-finite boxes (NaN/Infinity in the file) and how many
            other annotations were removed.
        """
        img_index = self._image_index()
        finite = np.isfinite(self.boxes).all(axis=1)
        x1, y1, x2, y2 = self.boxes.T
        with np.errstate(invalid='ignore'):
            valid = ((x2 > x1) & (y2 > y1) & (x1 < self.widths[img_index])
                     & (y1 < self.heights[img_index]) & (x2 > 0) & (y2 > 0))
        non_finite = self.ann_ids[~finite].tolist()
        keep = finite & valid
        for name in ('ann_ids', 'ann_img_ids', 'ann_cat_ids', 'boxes', 'crowd'):
            setattr(self, name, getattr(self, name)[keep])
        return non_finite, int((finite & ~valid).sum())

    def _image_index(self) -> np.ndarray:
        """Position in the image arrays of each annotation's image, int64 [A]."""
        order = np.argsort(self.img_ids, kind='stable')
        return order[np.searchsorted(self.img_ids, self.ann_img_ids, sorter=order)]

    def instances_per_image(self, cat_ids: np.ndarray) -> list[list[dict]]:
        """Group the annotations of the chosen categories by image.

        Args:
            cat_ids: int64 [C], the category id of each label.

        Returns:
            For each image (file order), its instances in file order, each
            ``dict(bbox=[x1, y1, x2, y2], bbox_label=int, ignore_flag=0|1)``.
        """
        keep = np.isin(self.ann_cat_ids, cat_ids)
        cat_order = np.argsort(cat_ids, kind='stable')
        labels = cat_order[np.searchsorted(cat_ids, self.ann_cat_ids[keep], sorter=cat_order)]
        img_index = self._image_index()[keep]
        order = np.argsort(img_index, kind='stable')
        instances = [
            dict(bbox=box, bbox_label=label, ignore_flag=flag)
            for box, label, flag in zip(self.boxes[keep][order].tolist(), labels[order].tolist(),
                                        self.crowd[keep][order].astype(int).tolist())
        ]
        ends = np.cumsum(np.bincount(img_index, minlength=len(self.img_ids))).tolist()
        return [instances[start:end] for start, end in zip([0] + ends[:-1], ends)]


def _annotation_ids(annotations: list, path: str) -> np.ndarray:
    """The ``id`` of every annotation, int64 [A]; each must have one (pycocotools needs it)."""
    missing = [i for i, a in enumerate(annotations) if 'id' not in a]
    if missing:
        raise ValueError(f'COCO annotation file {path}: annotations[{missing[0]}] '
                         f'({annotations[missing[0]]!r:.80}) has no "id" '
                         f'({len(missing)} annotation(s) lack one)')
    return _integers([a['id'] for a in annotations], 'annotations id', path)


def _parse_bboxes(bboxes: list, path: str) -> np.ndarray:
    """Convert COCO ``[x, y, w, h]`` boxes to float64 [A, 4] ``(x1, y1, x2, y2)``."""
    def is_box(value: object) -> bool:
        return (isinstance(value, (list, tuple)) and len(value) == 4
                and all(isinstance(v, (int, float)) for v in value))

    if not all(is_box(value) for value in bboxes):
        index = next(i for i, value in enumerate(bboxes) if not is_box(value))
        raise ValueError(f'COCO annotation file {path}: bbox of annotations[{index}] is '
                         f'{bboxes[index]!r:.80}, not 4 numbers [x, y, w, h]')
    xywh = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
