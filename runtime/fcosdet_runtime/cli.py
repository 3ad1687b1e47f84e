"""``fcosdet-ort MODEL.onnx INPUTS... --out-dir DIR``: detect with onnxruntime, write JSONs.

INPUTS are image files, folders of images or glob patterns (quoted). Writes
``DIR/preds/<image stem>.json`` per image (``<image name>.json`` where stems collide), as
``tools/infer.py`` does: ``bboxes`` (x1y1x2y2 in the image's pixels), ``scores``, ``labels``,
``label_names``.
"""
import argparse
import os.path as osp
import sys
from collections.abc import Sequence

from .detector import Detector
from .files import json_names, list_images, read_image, write_json
from .postprocess import to_json_dict


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        prog='fcosdet-ort', description='Detect objects with an end-to-end fcosdet ONNX file')
    parser.add_argument('model', help='end-to-end .onnx file of tools/deployment/pytorch2onnx.py')
    parser.add_argument('inputs', nargs='+', help='image files, folders or glob patterns')
    parser.add_argument('--out-dir', default='outputs',
                        help='write the predictions to OUT_DIR/preds/<image stem>.json')
    parser.add_argument('--score-thr', type=float, default=0.0,
                        help='write the detections with a score of at least this (default: all)')
    parser.add_argument('--batch-size', type=int, default=1, help='images per onnxruntime run')
    parser.add_argument('--num-threads', type=int, default=None,
                        help="onnxruntime intra-op threads (default: onnxruntime's choice)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Detect in every input; return the number of images written."""
    if args.batch_size < 1:
        raise ValueError(f'--batch-size must be >= 1, got {args.batch_size}')
    if not 0.0 <= args.score_thr <= 1.0:
        raise ValueError(f'--score-thr must be in [0, 1], got {args.score_thr}')
    images = list_images(args.inputs)
    names = json_names(images)
    detector = Detector(args.model, num_threads=args.num_threads)
    for start in range(0, len(images), args.batch_size):
        paths = images[start:start + args.batch_size]
        results = detector([read_image(p) for p in paths])
        for result, name in zip(results, names[start:start + args.batch_size]):
            write_json(to_json_dict(result, detector.classes, args.score_thr),
                       osp.join(args.out_dir, 'preds', name))
    return len(images)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``fcosdet-ort``: a bad input or file ends with a one-line error."""
    args = parse_args(argv)
    try:
        count = run(args)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'fcosdet-ort: error: {err}')
    print(f'Predictions of {count} images written to {osp.join(args.out_dir, "preds")}/')


if __name__ == '__main__':
    main()
