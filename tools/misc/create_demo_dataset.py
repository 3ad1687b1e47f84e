"""Generate (or regenerate) the fcosdet demo dataset, e.g. to look at it before training.

Example::

    python tools/misc/create_demo_dataset.py --data-root data/fcos_demo --overwrite

A "large image, small objects" set (sliced inference, training on tiles; see
docs/custom_dataset.md)::

    python tools/misc/create_demo_dataset.py --data-root data/demo_large --num-train 40 \
        --num-val 10 --img-size 1200 1600 --box-sides 8 32 --objects-per-image 40 80
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
    parser.add_argument('--box-sides', type=int, nargs=2, default=None, metavar=('LO', 'HI'),
                        help='object scale sqrt(w*h) log-uniform in [LO, HI] px (LO >= 8); '
                             'default: a mix of COCO small, medium and large objects')
    parser.add_argument('--objects-per-image', type=int, nargs=2, default=(2, 6),
                        metavar=('LO', 'HI'), help='objects drawn per image (inclusive range)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate even if a complete dataset exists')
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    try:
        root = generate_demo_dataset(args.data_root, num_train=args.num_train,
                                     num_val=args.num_val, img_size=tuple(args.img_size),
                                     seed=args.seed, overwrite=args.overwrite,
                                     box_sides=args.box_sides,
                                     objects_per_image=tuple(args.objects_per_image))
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    for split in ('train', 'val'):
        with open(root / 'annotations' / f'instances_{split}.json') as f:
            coco = json.load(f)
        print(f'{split}: {len(coco["images"])} images, {len(coco["annotations"])} boxes '
              f'-> {root / split}')


if __name__ == '__main__':
    main()
