"""Convert a Pascal VOC dataset to a COCO file.

Example::

    python tools/dataset_converters/voc2coco.py data/VOCdevkit/VOC2007 --split trainval \
        --out data/VOCdevkit/VOC2007/annotations/instances_trainval.json

VOC's 1-based inclusive corners become ``x = xmin - 1``, ``w = xmax - xmin + 1``; ``difficult``
objects are ignore boxes (``iscrowd: 1``) unless ``--difficult drop|keep``. ``file_name`` is
``JPEGImages/...``, relative to DIR. Conventions: docs/custom_dataset.md.
"""
import argparse
from collections.abc import Sequence

from fcosdet.datasets.converters import (
    DIFFICULT_MODES,
    parse_classes,
    read_voc,
    summary,
    to_coco,
    write_coco,
)
from fcosdet.utils.cli import run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Convert a Pascal VOC dataset to a COCO file')
    parser.add_argument('dir', help='VOC folder (Annotations/, JPEGImages/, ImageSets/Main/)')
    parser.add_argument('--out', required=True, help='COCO JSON file to write')
    parser.add_argument('--split', help='ImageSets/Main/SPLIT.txt (default: every XML file)')
    parser.add_argument('--difficult', choices=DIFFICULT_MODES, default='ignore',
                        help='difficult objects: ignore boxes (iscrowd 1), dropped, or kept '
                             'as ordinary boxes')
    parser.add_argument('--classes', nargs='+',
                        help='class names in label order, or a text file with one a line '
                             '(default: the names found, sorted)')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Convert and print one summary line."""
    args = parse_args(argv)
    classes = parse_classes(args.classes)
    records, classes = read_voc(args.dir, args.split, args.difficult, classes)
    coco = to_coco(records, classes)
    print(f'{write_coco(coco, args.out)}: {summary(coco)}; file names relative to {args.dir}')


if __name__ == '__main__':
    run_cli(main)
