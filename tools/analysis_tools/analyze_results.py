"""Draw the best and the worst images of dumped detections, ranked by per-image mAP.

Example (predictions of ``tools/test.py CONFIG CHECKPOINT --out results.pkl``)::

    python tools/analysis_tools/analyze_results.py CONFIG results.pkl SHOW_DIR --topk 20

Each image's mAP is MMDetection's (``fcosdet.evaluation.functional.image_map``: VOC-area AP
per class with gt, averaged over classes and IoU 0.50:0.05:0.95); images without gt boxes are
not ranked. The ``topk`` best go to ``SHOW_DIR/good/``, the ``topk`` worst to
``SHOW_DIR/bad/``, as ``<image name>_<mAP>.png`` with the gt on the left and the predictions
(score > ``--show-score-thr``) on the right.
"""
import argparse
import os.path as osp
from collections.abc import Sequence

import mmcv
import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.structures import InstanceData

from fcosdet.evaluation.functional import (
    ImageDets,
    ImageGt,
    image_map,
    rank_images,
    results_with_gt,
)
from fcosdet.structures import DetDataSample
from fcosdet.utils.cli import (
    CLIError,
    build_test_dataset,
    load_config,
    run_cli,
    unit_interval,
)
from fcosdet.visualization import DetLocalVisualizer


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Draw the best and worst images by mAP')
    parser.add_argument('config', help='test config file (its test dataset gives the gt)')
    parser.add_argument('prediction_path', help='results .pkl of tools/test.py --out')
    parser.add_argument('show_dir', help='folder of the drawn images (good/ and bad/)')
    parser.add_argument('--show', action='store_true', help='also show each drawn image')
    parser.add_argument('--wait-time', type=float, default=0,
                        help='seconds each shown image stays (0: until a key)')
    parser.add_argument('--topk', type=int, default=20, help='how many best and worst images')
    parser.add_argument('--show-score-thr', type=unit_interval('--show-score-thr'),
                        default=0,
                        help='draw predictions with a score above this')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values, e.g. test_dataloader.dataset.data_root=x')
    args = parser.parse_args(argv)
    if args.topk < 1:
        raise CLIError(f'--topk must be >= 1, got {args.topk}')
    return args


def to_sample(dets: ImageDets, gt: ImageGt) -> DetDataSample:
    """A data sample holding the non-ignored gt boxes and the detections."""
    sample = DetDataSample()
    keep = ~gt.ignore
    sample.gt_instances = InstanceData(bboxes=torch.from_numpy(gt.bboxes[keep]),
                                       labels=torch.from_numpy(gt.labels[keep]))
    sample.pred_instances = InstanceData(bboxes=torch.from_numpy(dets.bboxes),
                                         scores=torch.from_numpy(dets.scores),
                                         labels=torch.from_numpy(dets.labels))
    return sample


def main(argv: Sequence[str] | None = None) -> None:
    """Rank the images by mAP and draw the best and worst ones."""
    args = parse_args(argv)
    dataset = build_test_dataset(load_config(args.config, args.cfg_options))
    try:
        pairs = results_with_gt(args.prediction_path, dataset)
    except ValueError as err:
        raise CLIError(str(err)) from err
    maps = np.array([image_map(dets, gt) for _, dets, gt in pairs])
    ranked = np.count_nonzero(~np.isnan(maps))
    print(f'{ranked} of {len(pairs)} images have gt boxes; their mean per-image mAP is '
          f'{np.nanmean(maps) if ranked else float("nan"):.3f}')
    visualizer = DetLocalVisualizer.get_instance('analyze_results')
    visualizer.dataset_meta = dataset.metainfo
    best, worst = rank_images(maps, args.topk)
    for folder, indices in (('good', best), ('bad', worst)):
        for index in indices:
            info, dets, gt = pairs[index]
            image = mmcv.imread(info['img_path'], channel_order='rgb')
            name = osp.splitext(osp.basename(info['img_path']))[0]
            out_file = osp.join(args.show_dir, folder, f'{name}_{maps[index]:.3f}.png')
            visualizer.add_datasample(name, image, to_sample(dets, gt), show=args.show,
                                      wait_time=args.wait_time, out_file=out_file,
                                      pred_score_thr=args.show_score_thr)
        print(f'{folder}: {len(indices)} images drawn into {osp.join(args.show_dir, folder)}')


if __name__ == '__main__':
    run_cli(main)
