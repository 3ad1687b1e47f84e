"""Convert a folder of LabelMe JSON files to a COCO file.

Example::

    python tools/dataset_converters/labelme2coco.py data/my_labelme \
        --out data/my_labelme/annotations/instances_train.json

Rectangles are boxes, polygons their bounding boxes; other shapes are skipped (counted). The
image size is the JSON's ``imageHeight``/``imageWidth``; ``file_name`` is relative to DIR.
"""
import argparse
from collections.abc import Sequence

from fcosdet.datasets.converters import (
    class_list,
    parse_classes,
    read_labelme,
    summary,
    to_coco,
    write_coco,
)
from fcosdet.utils.cli import run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Convert LabelMe JSON files to a COCO file')
    parser.add_argument('dir', help='folder of LabelMe .json files (searched recursively)')
    parser.add_argument('--out', required=True, help='COCO JSON file to write')
    parser.add_argument('--classes', nargs='+',
                        help='class names in label order, or a text file with one a line '
                             '(default: the labels found, sorted)')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Convert and print one summary line (and the skipped shape types)."""
    args = parse_args(argv)
    classes = parse_classes(args.classes)
    records, skipped = read_labelme(args.dir, classes, exclude=[args.out])
    coco = to_coco(records, class_list(records, classes))
    skipped_text = ''.join(f'; skipped {n} {kind} shape(s)' for kind, n in sorted(skipped.items()))
    print(f'{write_coco(coco, args.out)}: {summary(coco)}{skipped_text}; file names relative '
          f'to {args.dir}')


if __name__ == '__main__':
    run_cli(main)
