"""Check a config's datasets before training: ``python tools/misc/check_dataset.py CONFIG``.

Reads each annotation file (every check of ``CocoDataset`` runs; a bad file is reported and the
other splits are still checked) and the header of every image (nothing is decoded): a missing or
unreadable image, or one whose size differs from the ``width``/``height`` of its annotation, is
reported with its path, one line each. Exits with
status 1 if anything is wrong, so a long run does not stop at iteration 3,000.

Example::

    python tools/misc/check_dataset.py configs/fcos/fcos_r18_fpn_gn-head_demo.py
"""
import argparse
import io
from collections.abc import Sequence

from mmengine import fileio
from mmengine.config import Config, DictAction

from fcosdet.datasets.converters import ConversionError, decoded_size
from fcosdet.registry import DATASETS
from fcosdet.utils import register_all_modules
from fcosdet.utils.cli import CLIError, load_config, run_cli
from fcosdet.utils.error_format import error_message

SPLITS = ('train', 'val', 'test')
_MAX_LISTED = 20


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Check a config's annotation and image files")
    parser.add_argument('config', help='config file')
    parser.add_argument('--splits', nargs='+', choices=SPLITS, default=list(SPLITS),
                        help='which dataloaders to check')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values; the parent of every key must exist')
    return parser.parse_args(argv)


def image_problem(path: str, height: int, width: int) -> str | None:
    """What is wrong with one image file, from its header only; None if nothing.

    Args:
        path: Image path or URI.
        height, width: The annotation file's size of the image.

    Returns:
        A message naming the path, or None.
    """
    try:
        source = io.BytesIO(fileio.get(path)) if '://' in path else path
        decoded_h, decoded_w = decoded_size(source, name=path)
    except FileNotFoundError:
        return f'image file not found: {path}'
    except ConversionError as err:
        return str(err)
    except Exception as err:  # fetching a URI
        return f'image file cannot be read: {path} ({type(err).__name__}: {err})'
    if (decoded_h, decoded_w) != (height, width):
        return (f'image {path} is {decoded_h} x {decoded_w} (height x width) when decoded, but '
                f'its annotation file says {height} x {width}')
    return None


def check_split(cfg: Config, split: str) -> tuple[int, list[str]]:
    """Build the dataset of ``<split>_dataloader`` and check its images.

    Returns:
        The number of images checked and the problems found.
    """
    loader = cfg.get(f'{split}_dataloader')
    if not loader or 'dataset' not in loader:
        return 0, []
    dataset = DATASETS.build(loader['dataset'])
    problems = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        problem = image_problem(info['img_path'], info['height'], info['width'])
        if problem:
            problems.append(problem)
    return len(dataset), problems


def main(argv: Sequence[str] | None = None) -> None:
    """Check the datasets and print one line per problem and one summary line per split."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    register_all_modules()
    found, seen = 0, []
    for split in args.splits:
        dataset_cfg = cfg.get(f'{split}_dataloader', {}).get('dataset')
        if dataset_cfg in seen:  # e.g. test_dataloader = val_dataloader
            print(f'{split}: same dataset as {args.splits[seen.index(dataset_cfg)]}')
            continue
        seen.append(dataset_cfg)
        try:
            num_images, problems = check_split(cfg, split)
        except Exception as err:  # a bad annotation file: report it, check the other splits
            num_images, problems = 0, [error_message(err, cfg)]
        for problem in problems[:_MAX_LISTED]:
            print(f'{split}: {problem}')
        more = f' (first {_MAX_LISTED} listed)' if len(problems) > _MAX_LISTED else ''
        print(f'{split}: {num_images} image(s) checked, {len(problems)} problem(s){more}')
        found += len(problems)
    if found:
        raise CLIError(f'{found} problem(s) in the datasets of {args.config}')


if __name__ == '__main__':
    run_cli(main)
