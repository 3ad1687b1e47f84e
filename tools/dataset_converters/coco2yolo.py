"""Convert a COCO file and its images to an Ultralytics YOLO dataset.

Example::

    python tools/dataset_converters/coco2yolo.py data/coco/annotations/instances_val2017.json \
        data/coco/val2017 --out data/coco_yolo --split val

Writes ``OUT/images/SPLIT/`` (copies, or ``--symlink``), ``OUT/labels/SPLIT/*.txt`` and
``OUT/data.yaml`` (run once per split into the same OUT: the splits are added to it). Classes
are numbered 0..C-1 in the order of the category ids; crowd boxes have no YOLO form and are
left out (counted).
"""
import argparse
from collections.abc import Sequence

from fcosdet.datasets.converters import read_coco_records, write_yolo
from fcosdet.utils.cli import run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Convert a COCO file to a YOLO dataset')
    parser.add_argument('ann_file', help='COCO JSON file')
    parser.add_argument('img_dir', help='folder that file_name of the images is relative to')
    parser.add_argument('--out', required=True, help='YOLO dataset folder to write into')
    parser.add_argument('--split', default='train', help='split name (images/SPLIT, ...)')
    parser.add_argument('--symlink', action='store_true',
                        help='link the images instead of copying them')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Convert and print one summary line."""
    args = parse_args(argv)
    records, classes = read_coco_records(args.ann_file)
    counts = write_yolo(records, classes, args.img_dir, args.out, args.split, args.symlink)
    print(f"{args.out}: split {args.split}: {counts['images']} images, {counts['boxes']} boxes, "
          f'{len(classes)} classes; left out {counts["ignored"]} crowd and {counts["empty"]} '
          'empty boxes')


if __name__ == '__main__':
    run_cli(main)
