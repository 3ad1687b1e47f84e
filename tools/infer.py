"""Detect objects in many images in batches; save drawings and one JSON per image.

INPUTS is an image file, a folder of images or a glob pattern (quote it), e.g.::

    python tools/infer.py data/fcos_demo/val/ CONFIG CHECKPOINT --out-dir outputs --batch-size 4
    python tools/infer.py 'photos/**/*.jpg' CONFIG fcos.onnx --backend onnxruntime
    fcosdet-ort fcos.onnx 'photos/**/*.jpg' --out-dir outputs  # the same JSONs, without torch

writes ``<out-dir>/vis/<image name>`` (predictions with a score above ``--score-thr`` drawn) and
``<out-dir>/preds/<image stem>.json`` (``bboxes`` x1y1x2y2 in original pixels, ``scores``,
``labels``, ``label_names``: every detection of the model). The flags of
``tools/image_demo.py`` work too (``--out-file`` for a single image), and so do the
``--slice-*`` flags of sliced inference for large images (docs/inference.md).
"""
import argparse
from collections.abc import Sequence

import mmcv
from mmengine.config import DictAction

from fcosdet.apis import DetInferencer
from fcosdet.apis.det_inferencer import list_images
from fcosdet.deployment import BACKENDS
from fcosdet.utils.cli import CLIError, load_config, run_cli, unit_interval
from fcosdet.utils.slice_cli import add_slice_args, slice_kwargs


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description='Run a detector on images in batches')
    parser.add_argument('inputs', help='image file, folder of images or glob pattern')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (the .onnx file for onnxruntime)')
    parser.add_argument('--out-dir', default='outputs',
                        help='folder of the drawings (vis/) and predictions (preds/)')
    parser.add_argument('--out-file', default=None,
                        help='single image only: write its drawing to this file')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument('--backend', choices=BACKENDS, default='pytorch',
                        help='run the network in PyTorch or in onnxruntime (CPU)')
    parser.add_argument('--score-thr', '--pred-score-thr', dest='score_thr',
                        type=unit_interval('--score-thr'),
                        default=0.3, help='draw predictions with a score above this')
    parser.add_argument('--show', action='store_true', help='show each drawing in a window')
    parser.add_argument('--no-save-vis', action='store_true', help='do not save drawings')
    parser.add_argument('--no-save-pred', action='store_true', help='do not save the JSONs')
    parser.add_argument('--print-result', action='store_true', help='print the predictions')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values; the parent of every key must exist')
    add_slice_args(parser)
    return parser.parse_args(argv)


def _check_args(args: argparse.Namespace) -> list:
    """The input images; CLIError on a bad flag or input."""
    if args.batch_size < 1:
        raise CLIError(f'--batch-size must be >= 1, got {args.batch_size}')
    try:
        images = list_images(args.inputs)
    except FileNotFoundError as err:
        raise CLIError(err.args[0]) from err
    if args.out_file is not None and len(images) != 1:
        raise CLIError(f'--out-file needs a single image; {args.inputs} holds {len(images)}')
    return images


def main(argv: Sequence[str] | None = None) -> None:
    """Build the inferencer, run it over the inputs, say where the outputs are."""
    args = parse_args(argv)
    images = _check_args(args)
    slicing = slice_kwargs(args)
    cfg = load_config(args.config, args.cfg_options)  # checks the file and overrides
    try:
        inferencer = DetInferencer(cfg, args.checkpoint, device=args.device,
                                   backend=args.backend, **slicing)
    except (FileNotFoundError, ValueError) as err:
        raise CLIError(err.args[0]) from err
    result = inferencer(images, batch_size=args.batch_size, out_dir=args.out_dir,
                        pred_score_thr=args.score_thr, show=args.show,
                        no_save_vis=args.no_save_vis or args.out_file is not None,
                        no_save_pred=args.no_save_pred, print_result=args.print_result,
                        return_vis=args.out_file is not None)
    if args.out_file is not None:
        mmcv.imwrite(mmcv.rgb2bgr(result['visualization'][0]), args.out_file)
        print(f'Drawing written to {args.out_file}')
    saved = [name for name, off in (('vis/', args.no_save_vis or args.out_file is not None),
                                    ('preds/', args.no_save_pred)) if not off]
    if args.out_dir and saved:
        print(f'Results of {len(images)} images written to {args.out_dir}/ '
              f'({", ".join(saved)})')


if __name__ == '__main__':
    run_cli(main)
