"""A small COCO-format detection dataset, generated deterministically from a seed.

It lets FCOS be trained and evaluated end to end on a CPU without downloads: coloured shapes
of four classes (ellipse, rectangle, triangle, cross) with varied sizes (about 10 px up to most
of the image), aspect ratios and rotations, drawn over textured, noisy backgrounds with
clutter (lines, dots) and partial overlaps. Boxes are the extent of each object's *visible*
pixels, so an object partly hidden by a later one gets a box around what can still be seen.
``box_sides`` and ``objects_per_image`` make other sets, e.g. large images with many small
objects for sliced inference (see :func:`generate_demo_dataset`).

Layout written by :func:`generate_demo_dataset`::

    data_root/train/000001.png ...          data_root/val/000001.png ...
    data_root/annotations/instances_train.json
    data_root/annotations/instances_val.json
    data_root/demo_meta.json                 (generation parameters; marks the data complete)

:class:`DemoCocoDataset` generates the data on first use and then reads it exactly like
:class:`CocoDataset` reads COCO.
"""
from __future__ import annotations

import colorsys
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fcosdet.registry import DATASETS
from fcosdet.visualization.palette import generate_palette

from .coco import CocoDataset
from .demo_params import DEFAULT_OBJECTS_PER_IMAGE, check_demo_params

DEMO_CLASSES: tuple[str, ...] = ('ellipse', 'rectangle', 'triangle', 'cross')
# Non-contiguous on purpose: exercises the category-id -> label mapping of CocoDataset.
DEMO_CATEGORY_IDS: tuple[int, ...] = (1, 3, 5, 7)
# Centre hue (degrees) of each class; objects jitter around it, so colour helps but shape decides.
_CLASS_HUES: tuple[float, ...] = (0.0, 120.0, 220.0, 50.0)
_HUE_JITTER = 25.0
_META_FILE = 'demo_meta.json'
_SPLITS: tuple[str, ...] = ('train', 'val')
# COCO area ranges (box side sqrt(area)): small < 32, medium < 96, large >= 96.
_SIZE_BINS: tuple[tuple[float, float], ...] = ((10.0, 32.0), (32.0, 96.0), (96.0, 1e9))
_SIZE_BIN_PROBS: tuple[float, ...] = (0.35, 0.4, 0.25)
_MAX_OCCLUSION = 0.25  # a new object may hide at most this share of an earlier one
_PLACEMENT_TRIES = 30


@dataclass
class DemoObject:
    """One annotated object of a rendered image.

    Attributes:
        label: Class index in [0, len(DEMO_CLASSES)).
        bbox: Visible extent ``(x1, y1, x2, y2)`` in pixel-edge coordinates (a single pixel at
            column 3, row 5 gives ``(3, 5, 4, 6)``).
    """

    label: int
    bbox: tuple[int, int, int, int]


def _image_rng(seed: int, split: int, index: int, stream: int) -> np.random.Generator:
    """Independent random stream per (seed, split, image, purpose)."""
    return np.random.default_rng([seed, split, index, stream])


def _hsv_to_rgb(hue_deg: float, sat: float, val: float) -> np.ndarray:
    """RGB colour ``[3]`` (0..255) of a hue in degrees and a saturation and value in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, sat, val)) * 255.0


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Muted background: a colour gradient plus smooth blotches plus optional stripes.

    Returns:
        float32 array ``[H, W, 3]`` (RGB, 0..255).
    """
    base = rng.uniform(60, 190) + rng.uniform(-20, 20, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height)[..., None]
    img = base + ramp * rng.uniform(-50, 50, size=3)
    coarse = rng.normal(0, 25, size=(int(rng.integers(3, 12)), int(rng.integers(3, 12)), 3))
    img = img + cv2.resize(coarse.astype(np.float32), (width, height),
                           interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.4:
        period = rng.uniform(6, 30)
        direction = rng.uniform(0, np.pi)
        phase = np.cos(direction) * xs + np.sin(direction) * ys
        img = img + (rng.uniform(8, 20) * np.sin(2 * np.pi * phase / period))[..., None]
    return img.astype(np.float32)


def _draw_clutter(rng: np.random.Generator, img: np.ndarray) -> None:
    """Draw distractor lines and dots (not annotated) onto ``img`` in place."""
    height, width = img.shape[:2]
    for _ in range(int(rng.integers(3, 12))):
        if rng.random() < 0.3:
            color = _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.5, 1), rng.uniform(0.5, 1))
        else:
            color = rng.uniform(30, 230) + rng.uniform(-15, 15, size=3)
        color = tuple(float(c) for c in color)
        if rng.random() < 0.6:
            p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(img, p1, p2, color, int(rng.integers(1, 3)))
        else:
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(img, centre, int(rng.integers(1, 5)), color, -1)


def _sample_box_size(rng: np.random.Generator, max_side: float,
                     box_sides: tuple[int, int] | None = None) -> tuple[int, int]:
    """Draw a box (w, h): size class, log-uniform scale inside it, aspect ratio in [1/2, 2].

    ``box_sides=(lo, hi)`` replaces the size classes by one log-uniform range of the scale
    ``sqrt(w * h)``.
    """
    if box_sides is None:
        lo, hi = _SIZE_BINS[int(rng.choice(len(_SIZE_BINS), p=_SIZE_BIN_PROBS))]
    else:
        lo, hi = (float(v) for v in box_sides)
    hi = min(hi, max_side)
    lo = min(lo, hi)
    scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    ratio = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    w = int(round(min(scale * np.sqrt(ratio), max_side)))
    h = int(round(min(scale / np.sqrt(ratio), max_side)))
    return max(w, 8), max(h, 8)


def _shape_mask(rng: np.random.Generator, label: int, box: tuple[int, int, int, int],
                shape: tuple[int, int]) -> np.ndarray:
    """Binary mask ``[H, W]`` of a shape of class ``label`` drawn inside ``box`` (x, y, w, h)."""
    mask = np.zeros(shape, np.uint8)
    x, y, w, h = box
    name = DEMO_CLASSES[label]
    if name == 'ellipse':
        cv2.ellipse(mask, (x + w // 2, y + h // 2), (max(w // 2, 1), max(h // 2, 1)),
                    0, 0, 360, 1, -1)
    elif name == 'rectangle':
        cv2.rectangle(mask, (x, y), (x + w - 1, y + h - 1), 1, -1)
    elif name == 'triangle':
        # A triangle with random rotation, scaled to fill the box.
        angles = rng.uniform(0, 2 * np.pi) + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
        pts = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        pts = (pts - pts.min(0)) / (pts.max(0) - pts.min(0))
        pts = np.round(pts * [w - 1, h - 1] + [x, y]).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    else:  # cross: a plus sign whose arm thickness is 30-45 % of the box side
        tw = max(int(round(w * rng.uniform(0.3, 0.45))), 2)
        th = max(int(round(h * rng.uniform(0.3, 0.45))), 2)
        cv2.rectangle(mask, (x, y + (h - th) // 2), (x + w - 1, y + (h - th) // 2 + th - 1), 1, -1)
        cv2.rectangle(mask, (x + (w - tw) // 2, y), (x + (w - tw) // 2 + tw - 1, y + h - 1), 1, -1)
    return mask.astype(bool)


def _place_objects(rng: np.random.Generator, img: np.ndarray, num_objects: int,
                   box_sides: tuple[int, int] | None = None) -> tuple[np.ndarray, list[int]]:
    """Draw up to ``num_objects`` objects onto ``img`` (float32 ``[H, W, 3]``) in place.

    Later objects are drawn on top; a placement that would hide more than ``_MAX_OCCLUSION``
    of an earlier object's visible pixels is re-drawn (or the object is skipped).

    Returns:
        ``owner``, int64 ``[H, W]``: index of the object visible at each pixel, -1 for
        background; and the class label of every placed object, in drawing order.
    """
    height, width = img.shape[:2]
    owner = np.full((height, width), -1, np.int64)
    labels: list[int] = []
    visible: list[int] = []  # visible pixel count of every placed object
    for _ in range(num_objects):
        label = int(rng.integers(len(DEMO_CLASSES)))
        for _ in range(_PLACEMENT_TRIES):
            w, h = _sample_box_size(rng, 0.85 * min(height, width), box_sides)
            box = (int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h)
            mask = _shape_mask(rng, label, box, (height, width))
            hidden = np.bincount(owner[mask] + 1, minlength=len(visible) + 1)[1:]
            if not np.any(hidden > _MAX_OCCLUSION * np.asarray(visible, np.float64)):
                break
        else:
            continue  # no room left for this object
        hue = _CLASS_HUES[label] + rng.uniform(-_HUE_JITTER, _HUE_JITTER)
        img[mask] = _hsv_to_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
        visible = [v - int(n) for v, n in zip(visible, hidden)] + [int(mask.sum())]
        owner[mask] = len(labels)
        labels.append(label)
    return owner, labels


def _visible_boxes(owner: np.ndarray, num: int) -> list[tuple[int, int, int, int]]:
    """Pixel-edge box ``(x1, y1, x2, y2)`` of the visible pixels of each of ``num`` objects."""
    boxes = []
    for k in range(num):
        ys, xs = np.nonzero(owner == k)
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    return boxes


def render_demo_image(seed: int, split: int, index: int, height: int, width: int,
                      num_objects: int | None = None, box_sides: tuple[int, int] | None = None,
                      objects_per_image: tuple[int, int] = (2, 6)
                      ) -> tuple[np.ndarray, list[DemoObject]]:
    """Render one demo image and its annotations, deterministically.

    Background, clutter, objects and pixel noise use independent random streams, so the same
    call with ``num_objects=0`` gives the same image without the objects (used by tests).

    Args:
        seed: Dataset seed (>= 0).
        split: 0 for train, 1 for val.
        index: Image index inside the split.
        height: Image height in pixels.
        width: Image width in pixels.
        num_objects: Objects to try to place; random in ``objects_per_image`` when None.
        box_sides: ``(lo, hi)`` range of the object scale ``sqrt(w * h)`` in pixels; None:
            the default mix of COCO small / medium / large.
        objects_per_image: Inclusive range of the object count when ``num_objects`` is None.

    Returns:
        uint8 RGB image ``[H, W, 3]`` and its objects (boxes of the visible pixels).
    """
    img = _background(_image_rng(seed, split, index, 0), height, width)
    _draw_clutter(_image_rng(seed, split, index, 1), img)
    obj_rng = _image_rng(seed, split, index, 2)
    if num_objects is None:
        num_objects = int(obj_rng.integers(objects_per_image[0], objects_per_image[1] + 1))
    owner, labels = _place_objects(obj_rng, img, num_objects, box_sides)
    noise_rng = _image_rng(seed, split, index, 3)
    img = img + noise_rng.normal(0, noise_rng.uniform(3, 10), size=img.shape)
    objects = [DemoObject(label, box)
               for label, box in zip(labels, _visible_boxes(owner, len(labels)))]
    return np.clip(np.round(img), 0, 255).astype(np.uint8), objects


def _write_split(root: Path, split: str, num_images: int, params: dict) -> None:
    """Render ``num_images`` images of one split and write PNGs plus the COCO json.

    ``params`` are the checked generation parameters (:func:`check_demo_params`).
    """
    split_id = _SPLITS.index(split)
    seed, img_size = params['seed'], params['img_size']
    box_sides = params.get('box_sides')
    per_image = tuple(params.get('objects_per_image', DEFAULT_OBJECTS_PER_IMAGE))
    (root / split).mkdir(parents=True)
    images, annotations = [], []
    for index in range(num_images):
        # Per-image size in [75 %, 100 %] of img_size: exercises resizing and rescaling.
        scales = _image_rng(seed, split_id, index, 4).uniform(0.75, 1.0, size=2)
        height, width = (int(round(s * f)) for s, f in zip(img_size, scales))
        img, objects = render_demo_image(seed, split_id, index, height, width,
                                         box_sides=box_sides, objects_per_image=per_image)
        file_name = f'{index + 1:06d}.png'
        cv2.imwrite(str(root / split / file_name), img[..., ::-1])  # RGB -> BGR for cv2
        images.append(dict(id=index + 1, file_name=file_name, height=height, width=width))
        for obj in objects:
            x1, y1, x2, y2 = obj.bbox
            annotations.append(dict(
                id=len(annotations) + 1, image_id=index + 1,
                category_id=DEMO_CATEGORY_IDS[obj.label],
                bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                area=float((x2 - x1) * (y2 - y1)), iscrowd=0))
    categories = [dict(id=cid, name=name) for cid, name in zip(DEMO_CATEGORY_IDS, DEMO_CLASSES)]
    coco = dict(info=dict(description=f'fcosdet demo dataset ({split}, seed {seed})'),
                images=images, annotations=annotations, categories=categories)
    (root / 'annotations').mkdir(exist_ok=True)
    with open(root / 'annotations' / f'instances_{split}.json', 'w') as f:
        json.dump(coco, f)


def _read_meta(root: Path) -> dict | None:
    """Generation parameters of a complete dataset at ``root``, or None if there is none."""
    meta_file = root / _META_FILE
    if not meta_file.is_file():
        return None
    try:
        with open(meta_file) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'demo dataset marker {meta_file} is unreadable ({e}); delete '
                         f'{root} or regenerate it with overwrite=True') from e


def _existing_matches(root: Path, params: dict) -> bool:
    """True when ``root`` holds a complete dataset made with ``params``.

    Raises:
        ValueError: ``root`` holds a complete dataset made with other parameters.
        FileExistsError: ``root`` is a non-empty folder that is not a demo dataset.
    """
    meta = _read_meta(root)
    if meta is None:
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise FileExistsError(f'{root} exists but is not a complete demo dataset (no '
                                  f'{_META_FILE}); delete it or pass overwrite=True')
        return False
    if meta != params:
        diff = {k: (meta.get(k), v) for k, v in params.items() if meta.get(k) != v}
        raise ValueError(f'demo dataset at {root} was generated with other parameters '
                         f'(key: (existing, requested)) {diff}; pass overwrite=True '
                         '(tools/misc/create_demo_dataset.py --overwrite) to regenerate it')
    return True


def _install(tmp: Path, root: Path, params: dict, overwrite: bool) -> None:
    """Move the finished dataset ``tmp`` to ``root`` with atomic renames."""
    if overwrite and root.exists():
        trash = Path(tempfile.mkdtemp(prefix=f'.{root.name}.old-', dir=root.parent))
        os.rename(root, trash / root.name)
        os.rename(tmp, root)
        shutil.rmtree(trash, ignore_errors=True)
        return
    try:
        os.rename(tmp, root)  # replaces an empty folder; fails on a non-empty one
    except OSError:
        if _read_meta(root) != params:  # not a concurrent process that finished first
            raise


def generate_demo_dataset(data_root: str | Path, num_train: int = 200, num_val: int = 50,
                          img_size: tuple[int, int] = (256, 320), seed: int = 0,
                          overwrite: bool = False, box_sides: tuple[int, int] | None = None,
                          objects_per_image: tuple[int, int] = DEFAULT_OBJECTS_PER_IMAGE
                          ) -> Path:
    """Generate the demo dataset under ``data_root`` (see the module docstring for the layout).

    The data is written into a temporary folder beside ``data_root`` and renamed into place,
    so a crash or concurrent processes (distributed ranks) never leave a half-written dataset.
    Each image depends only on (seed, split, index): the same seed gives identical files.

    Args:
        data_root: Output folder.
        num_train: Number of training images.
        num_val: Number of validation images.
        img_size: Largest (height, width); each image's sides are drawn in [75 %, 100 %] of it.
        seed: Random seed (>= 0).
        overwrite: Regenerate even if a complete dataset already exists.
        box_sides: ``(lo, hi)``: every object's scale ``sqrt(w * h)`` log-uniform in it
            (lo >= 8 px) instead of the default mix of COCO small/medium/large objects.
        objects_per_image: Inclusive range of the objects drawn per image (fewer when they do
            not fit).

    A "large image, small objects" set (for sliced inference and training on tiles, see
    docs/custom_dataset.md): ``img_size=(1200, 1600), box_sides=(8, 32),
    objects_per_image=(40, 80)``.

    Returns:
        ``data_root`` as a Path.

    Raises:
        ValueError: Bad argument, or existing data made with other parameters (without
            ``overwrite``).
        FileExistsError: ``data_root`` is a non-empty folder that is not a demo dataset.
    """
    params = check_demo_params(num_train, num_val, img_size, seed, box_sides, objects_per_image)
    root = Path(data_root)
    if not overwrite and _existing_matches(root, params):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{root.name}.tmp-', dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the dataset should be readable like any other
    try:
        for split, num in zip(_SPLITS, (num_train, num_val)):
            _write_split(tmp, split, num, params)
        with open(tmp / _META_FILE, 'w') as f:
            json.dump(params, f)
        _install(tmp, root, params, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename succeeded
    return root


_DEMO_CFG_KEYS = frozenset({'num_train', 'num_val', 'img_size', 'seed', 'box_sides',
                            'objects_per_image'})


@DATASETS.register_module()
class DemoCocoDataset(CocoDataset):
    """:class:`CocoDataset` over the demo data, generated under ``data_root`` when missing.

    Every process (e.g. each distributed rank) may construct it at once: generation is
    atomic and the first finished copy wins.

    Args:
        data_root: Folder of the demo dataset (created if missing).
        demo_cfg: Keyword arguments of :func:`generate_demo_dataset` (``num_train``,
            ``num_val``, ``img_size``, ``seed``, ``box_sides``, ``objects_per_image``); its
            defaults when None. Train and val
            datasets of one config must use the same ``demo_cfg``.
        **kwargs: :class:`CocoDataset` arguments (``ann_file``, ``data_prefix``,
            ``pipeline``, ...).
    """

    METAINFO: dict = dict(classes=DEMO_CLASSES, palette=generate_palette(len(DEMO_CLASSES)))

    def __init__(self, data_root: str = '', demo_cfg: dict | None = None, **kwargs) -> None:
        demo_cfg = dict(demo_cfg or {})
        unknown = set(demo_cfg) - _DEMO_CFG_KEYS
        if unknown:
            raise KeyError(f'DemoCocoDataset: unknown demo_cfg key(s) {sorted(unknown)}; '
                           f'expected some of {sorted(_DEMO_CFG_KEYS)} (regenerate with '
                           'tools/misc/create_demo_dataset.py --overwrite)')
        if not data_root:
            raise ValueError('DemoCocoDataset: data_root is required (e.g. data/fcos_demo/)')
        generate_demo_dataset(data_root, **demo_cfg)
        super().__init__(data_root=data_root, **kwargs)
