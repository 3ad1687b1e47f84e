"""Generate (or regenerate) the fcosdet demo dataset, e.g. to look at it before training.

Example::

    python tools/misc/create_demo_dataset.py --data-root data/fcos_demo --overwrite
"""
import argparse
import json

from fcosdet.datasets.demo_dataset import generate_demo_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Generate the fcosdet demo COCO-format dataset')
    parser.add_argument('--data-root', default='data/fcos_demo', help='output folder')
    parser.add_argument('--num-train', type=int, default=200, help='training images')
    parser.add_argument('--num-val', type=int, default=50, help='validation images')
    parser.add_argument('--img-size', type=int, nargs=2, default=(256, 320),
                        metavar=('HEIGHT', 'WIDTH'), help='largest image size')
    parser.add_argument('--seed', type=int, default=0, help='random seed (>= 0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate even if a complete dataset exists')
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    try:
        root = generate_demo_dataset(args.data_root, num_train=args.num_train,
                                     num_val=args.num_val, img_size=tuple(args.img_size),
                                     seed=args.seed, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    for split in ('train', 'val'):
        with open(root / 'annotations' / f'instances_{split}.json') as f:
            coco = json.load(f)
        print(f'{split}: {len(coco["images"])} images, {len(coco["annotations"])} boxes '
              f'-> {root / split}')


if __name__ == '__main__':
    main()
