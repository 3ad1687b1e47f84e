"""Convert a COCO file and its images to a Pascal VOC dataset.

Example::

    python tools/dataset_converters/coco2voc.py data/my_data/annotations/instances_val.json \
        data/my_data/val --out data/my_voc --split val

Writes ``OUT/JPEGImages/`` (copies, or ``--symlink``), ``OUT/Annotations/<id>.xml`` and
``OUT/ImageSets/Main/SPLIT.txt``; the VOC id of an image is the stem of its file name. Corners
are written 1-based and inclusive (``xmin = round(x) + 1``, ``xmax = round(x + w)``); crowd
boxes become ``<difficult>1``.
"""
import argparse
from collections.abc import Sequence

from fcosdet.datasets.converters import read_coco_records, write_voc
from fcosdet.utils.cli import run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Convert a COCO file to a Pascal VOC dataset')
    parser.add_argument('ann_file', help='COCO JSON file')
    parser.add_argument('img_dir', help='folder that file_name of the images is relative to')
    parser.add_argument('--out', required=True, help='VOC folder to write into')
    parser.add_argument('--split', default='train', help='ImageSets/Main/SPLIT.txt to write')
    parser.add_argument('--symlink', action='store_true',
                        help='link the images instead of copying them')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Convert and print one summary line."""
    args = parse_args(argv)
    records, _ = read_coco_records(args.ann_file)
    counts = write_voc(records, args.img_dir, args.out, args.split, args.symlink)
    print(f"{args.out}: split {args.split}: {counts['images']} images, {counts['boxes']} boxes")


if __name__ == '__main__':
    run_cli(main)
