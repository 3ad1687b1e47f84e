"""Slice a COCO-format dataset into overlapping tiles, for training on large images.

Example (tiles of 256 × 320 pixels, 20 % overlap)::

    D=data/demo_large
    python tools/dataset_converters/slice_coco.py $D/annotations/instances_train.json \\
        $D/train $D/tiles_train --size 256 320 --overlap 0.2 --min-visible 0.5

writes ``OUT_DIR/images/<name>_<x1>_<y1>.<ext>`` (the tile of image ``<name>`` whose top-left
corner is at ``(x1, y1)``) and ``OUT_DIR/annotations.json``. The tile grid is the one of sliced
inference (:func:`fcosdet.structures.slicing.slice_grid`). A box is clipped to each tile it
overlaps and kept there when at least ``--min-visible`` of its area is inside the tile (a box
cut more than that is dropped from that tile, as SAHI does). Tiles without any kept box are
written only up to ``--empty-ratio`` times the number of tiles with boxes, drawn at random
(``--seed``); the default 0.1 gives a little pure background without flooding training with it
(a config with ``filter_cfg=dict(filter_empty_gt=True)`` skips them anyway). Each image entry
records its source as ``original_image_id`` and ``tile`` ``[x1, y1, x2, y2]``.

Shape letters: T tiles of an image, K boxes of an image.
"""
import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from fcosdet.datasets.coco_ann import CocoAnnotations, read_coco_json
from fcosdet.structures.slicing import check_slice_params, clip_to_tile, slice_grid
from fcosdet.utils.cli import CLIError, run_cli
from fcosdet.utils.durable_files import write_text_durably


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; bad values exit with a one-line error."""
    parser = argparse.ArgumentParser(description='Slice a COCO dataset into overlapping tiles')
    parser.add_argument('ann_file', help='COCO annotation file of the images')
    parser.add_argument('img_dir', help='folder the file_name entries are relative to')
    parser.add_argument('out_dir', help='output folder (images/ and annotations.json)')
    parser.add_argument('--size', type=int, nargs=2, required=True, metavar=('H', 'W'),
                        help='tile height and width in pixels')
    parser.add_argument('--overlap', type=float, default=0.2,
                        help='overlap ratio of neighbouring tiles, in [0, 1)')
    parser.add_argument('--min-visible', type=float, default=0.5,
                        help='keep a clipped box when at least this share of its area is '
                             'inside the tile, in (0, 1]')
    parser.add_argument('--empty-ratio', type=float, default=0.1,
                        help='tiles without boxes kept, at most this times the tiles with boxes')
    parser.add_argument('--seed', type=int, default=0, help='seed of the empty-tile draw')
    args = parser.parse_args(argv)
    try:
        check_slice_params(tuple(args.size), args.overlap)
    except ValueError as err:
        parser.error(f'--size/--overlap: {err}')
    if not 0 < args.min_visible <= 1:
        parser.error(f'--min-visible must be in (0, 1], got {args.min_visible}')
    if args.empty_ratio < 0:
        parser.error(f'--empty-ratio must be >= 0, got {args.empty_ratio}')
    return args


def tile_annotations(anns: CocoAnnotations, index: int, size: tuple[int, int],
                     overlap: float, min_visible: float) -> list[tuple[list[int], list[dict]]]:
    """The tiles of image ``index`` and the annotations each one keeps.

    Args:
        anns: The parsed annotation file.
        index: Image position in ``anns``.
        size: Tile ``(h, w)``.
        overlap: Tile overlap ratio.
        min_visible: Least visible share of a box's area for it to stay in a tile.

    Returns:
        Per tile: ``[x1, y1, x2, y2]`` and its annotations (``bbox`` ``[x, y, w, h]`` in tile
        pixels, ``area``, ``category_id``, ``iscrowd``; no ids yet).
    """
    tiles = slice_grid(int(anns.heights[index]), int(anns.widths[index]), size, overlap)
    mine = anns.ann_img_ids == anns.img_ids[index]
    boxes = torch.from_numpy(anns.boxes[mine])  # [K, 4] x1y1x2y2, float64
    cat_ids, crowd = anns.ann_cat_ids[mine], anns.crowd[mine]
    result = []
    for tile in tiles:
        clipped, ratio = clip_to_tile(boxes, tile)
        wh = clipped[:, 2:] - clipped[:, :2]
        keep = ((ratio >= min_visible) & (wh > 0).all(dim=1)).nonzero().flatten().tolist()
        kept = [dict(bbox=[*clipped[k, :2].tolist(), *wh[k].tolist()],
                     area=float(wh[k].prod()), category_id=int(cat_ids[k]),
                     iscrowd=int(crowd[k])) for k in keep]
        result.append((tile.tolist(), kept))
    return result


def choose_empty(num_with_boxes: int, num_empty: int, ratio: float, seed: int) -> set[int]:
    """Indices (among the empty tiles) of the ``floor(ratio * num_with_boxes)`` kept at most."""
    count = min(num_empty, int(np.floor(ratio * num_with_boxes + 1e-9)))
    rng = np.random.default_rng(seed)
    return set(rng.choice(num_empty, size=count, replace=False).tolist())


def plan_tiles(anns: CocoAnnotations, args: argparse.Namespace) -> list[list[tuple]]:
    """Per image, the tiles to write: ``(tile, annotations)`` (empty tiles already drawn)."""
    per_image = [tile_annotations(anns, i, tuple(args.size), args.overlap, args.min_visible)
                 for i in range(len(anns.img_ids))]
    empty = [(i, t) for i, tiles in enumerate(per_image)
             for t, (_, kept) in enumerate(tiles) if not kept]
    chosen = choose_empty(sum(len(t) for t in per_image) - len(empty), len(empty),
                          args.empty_ratio, args.seed)
    dropped = {empty[j] for j in range(len(empty)) if j not in chosen}
    return [[tile for t, tile in enumerate(tiles) if (i, t) not in dropped]
            for i, tiles in enumerate(per_image)]


def read_image(path: Path, height: int, width: int) -> np.ndarray:
    """The image at ``path``; a CLIError when it is unreadable or not ``height`` × ``width``."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CLIError(f'image file missing or unreadable: {path}')
    if img.shape[:2] != (height, width):
        raise CLIError(f'image {path} is {img.shape[1]}x{img.shape[0]} (w x h) but the '
                       f'annotation file says {width}x{height}')
    return img


def write_tiles(anns: CocoAnnotations, plan: list[list[tuple]], img_dir: Path,
                out_dir: Path) -> dict:
    """Crop and write the planned tiles; return the tiles' COCO dict."""
    images, annotations = [], []
    for i, tiles in enumerate(plan):
        if not tiles:
            continue
        name = Path(anns.file_names[i])
        img = read_image(img_dir / name, int(anns.heights[i]), int(anns.widths[i]))
        for (x1, y1, x2, y2), kept in tiles:
            tile_name = name.with_name(f'{name.stem}_{x1}_{y1}{name.suffix}')
            (out_dir / 'images' / tile_name).parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(out_dir / 'images' / tile_name), img[y1:y2, x1:x2]):
                raise CLIError(f'cannot write tile {out_dir / "images" / tile_name}')
            image_id = len(images) + 1
            images.append(dict(id=image_id, file_name=tile_name.as_posix(), height=y2 - y1,
                               width=x2 - x1, original_image_id=int(anns.img_ids[i]),
                               tile=[x1, y1, x2, y2]))
            annotations += [dict(ann, id=len(annotations) + k + 1, image_id=image_id)
                            for k, ann in enumerate(kept)]
    categories = [dict(id=int(c), name=n) for c, n in zip(anns.cat_ids, anns.cat_names)]
    return dict(images=images, annotations=annotations, categories=categories)


def main(argv: Sequence[str] | None = None) -> None:
    """Slice the dataset and print a one-line summary."""
    args = parse_args(argv)
    try:
        anns = CocoAnnotations.from_json(read_coco_json(args.ann_file), args.ann_file)
    except (FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from err
    img_dir, out_dir = Path(args.img_dir), Path(args.out_dir)
    if not img_dir.is_dir():
        raise CLIError(f'image folder not found: {img_dir}')
    coco = write_tiles(anns, plan_tiles(anns, args), img_dir, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_durably(str(out_dir / 'annotations.json'), json.dumps(coco))
    empty = len({a['image_id'] for a in coco['annotations']} ^ {im['id'] for im in
                                                               coco['images']})
    print(f'{len(anns.img_ids)} images -> {len(coco["images"])} tiles ({empty} without boxes), '
          f'{len(coco["annotations"])} boxes -> {out_dir / "annotations.json"}', file=sys.stdout)


if __name__ == '__main__':
    run_cli(main)
