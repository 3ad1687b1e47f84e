"""Draw the training samples after the train pipeline, with their gt boxes.

Example::

    python tools/analysis_tools/browse_dataset.py configs/fcos/fcos_r18_fpn_gn-head_demo.py \
        --output-dir browse --not-show --max-samples 20
"""
import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from mmengine.config import DictAction
from mmengine.registry import init_default_scope

from fcosdet.registry import DATASETS
from fcosdet.utils import load_config, register_all_modules
from fcosdet.utils.cli import run_cli
from fcosdet.visualization import DetLocalVisualizer


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description='Browse the augmented training samples')
    parser.add_argument('config', help='config file')
    parser.add_argument('--output-dir', default=None, help='write one PNG per sample here')
    parser.add_argument('--not-show', action='store_true', help='do not open a window')
    parser.add_argument('--show-interval', type=float, default=2,
                        help='seconds each sample is shown')
    parser.add_argument('--max-samples', type=int, default=None,
                        help='stop after this many samples (default: all)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_dataloader.dataset.data_root=x')
    return parser.parse_args(argv)


def sample_to_rgb(inputs: np.ndarray) -> np.ndarray:
    """Packed BGR image ``[3, H, W]`` (as loaded by mmcv) to an RGB uint8 ``[H, W, 3]``."""
    return np.ascontiguousarray(inputs.transpose(1, 2, 0)[..., ::-1]).clip(0, 255).astype(
        np.uint8)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the train pipeline over the dataset and draw each sample."""
    args = parse_args(argv)
    if args.not_show and args.output_dir is None:
        raise ValueError('--not-show without --output-dir would draw nothing')
    cfg = load_config(args.config, args.cfg_options)
    register_all_modules(init_default_scope=False)
    # The dataset builds its pipeline through mmengine's registries: look in fcosdet's first.
    init_default_scope(cfg.get('default_scope', 'fcosdet'))
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    visualizer = DetLocalVisualizer.get_instance('browse_dataset')
    visualizer.dataset_meta = dataset.metainfo

    num_samples = len(dataset) if args.max_samples is None else min(args.max_samples,
                                                                     len(dataset))
    for index in range(num_samples):
        item = dataset[index]
        data_sample = item['data_samples']
        image = sample_to_rgb(item['inputs'].numpy())
        img_path = data_sample.metainfo.get('img_path') or f'{index:06d}'
        out_file = None
        if args.output_dir is not None:
            out_file = str(Path(args.output_dir) / f'{index:06d}_{Path(img_path).stem}.png')
        visualizer.add_datasample(Path(img_path).name, image, data_sample=data_sample,
                                  draw_pred=False, show=not args.not_show,
                                  wait_time=args.show_interval, out_file=out_file)
    print(f'Drew {num_samples} samples')


if __name__ == '__main__':
    run_cli(main)
