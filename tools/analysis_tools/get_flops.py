"""Count the FLOPs (multiply-accumulates) and parameters of a detector's tensor forward.

The count covers backbone, neck and head on one ``1 x 3 x H x W`` input (``mode='tensor'``),
without the post-processing. One fused multiply-add counts as one FLOP, as in MMDetection.

Example::

    python tools/analysis_tools/get_flops.py \
        configs/fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py --shape 800 1333
"""
import argparse
from collections.abc import Sequence

import torch
from mmengine.analysis import get_model_complexity_info
from torch import nn

from fcosdet.apis import init_detector
from fcosdet.utils.cli import run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description='Count FLOPs and parameters of a detector')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'),
                        help='input height and width (padded to the size divisor)')
    parser.add_argument('--size-divisor', type=int, default=32,
                        help='pad the input shape to a multiple of this')
    return parser.parse_args(argv)


def padded_shape(height: int, width: int, divisor: int) -> tuple[int, int]:
    """(H, W) rounded up to multiples of ``divisor``."""
    if height <= 0 or width <= 0:
        raise ValueError(f'--shape must be positive, got {height} {width}')
    return -(-height // divisor) * divisor, -(-width // divisor) * divisor


def model_complexity(model: nn.Module, height: int, width: int) -> dict:
    """FLOPs, parameter count and a per-module table of ``model(Tensor[1, 3, H, W])``.

    Returns:
        mmengine's complexity dict: ``flops``, ``params``, their ``*_str`` and ``out_table``.
    """
    inputs = torch.zeros(1, 3, height, width, device=next(model.parameters()).device)
    with torch.no_grad():
        return get_model_complexity_info(model, inputs=(inputs,), show_table=True,
                                         show_arch=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Build the model of a config and print its complexity table."""
    args = parse_args(argv)
    height, width = padded_shape(*args.shape, args.size_divisor)
    model = init_detector(args.config, device='cpu')
    info = model_complexity(model, height, width)
    split = '=' * 40
    print(info['out_table'])
    print(f'{split}\nInput shape: (1, 3, {height}, {width})\n'
          f'Flops: {info["flops_str"]}\nParams: {info["params_str"]}\n{split}')


if __name__ == '__main__':
    run_cli(main)
