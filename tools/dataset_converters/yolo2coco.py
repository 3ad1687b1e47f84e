"""Convert a YOLO dataset (Ultralytics or a flat folder with classes.txt) to a COCO file.

Example::

    python tools/dataset_converters/yolo2coco.py data/my_yolo --split train \
        --out data/my_yolo/annotations/instances_train.json

``file_name`` of each image is relative to the dataset root (``path`` of data.yaml, else DIR):
use that root as the config's ``data_root`` with ``data_prefix=dict(img='')``. Conventions are
in docs/custom_dataset.md and ``fcosdet/datasets/converters/yolo.py``.
"""
import argparse
from collections.abc import Sequence

from fcosdet.datasets.converters import read_yolo, summary, to_coco, write_coco
from fcosdet.utils.cli import run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Convert a YOLO dataset to a COCO file')
    parser.add_argument('dir', help='dataset folder (with data.yaml or classes.txt)')
    parser.add_argument('--out', required=True, help='COCO JSON file to write')
    parser.add_argument('--split', help="split to convert (a data.yaml key, or images/SPLIT)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Convert and print one summary line."""
    args = parse_args(argv)
    records, classes, root = read_yolo(args.dir, args.split)
    coco = to_coco(records, classes)
    out = write_coco(coco, args.out)
    print(f'{out}: {summary(coco)}; file names relative to {root}')


if __name__ == '__main__':
    run_cli(main)
