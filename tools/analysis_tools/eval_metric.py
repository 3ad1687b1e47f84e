"""Evaluate dumped detections offline with the config's ``test_evaluator``.

Example (predictions of ``tools/test.py CONFIG CHECKPOINT --out results.pkl``)::

    python tools/analysis_tools/eval_metric.py CONFIG results.pkl --pr-curve pr.png

``--pr-curve`` draws the per-class precision–recall curves of the COCO evaluation (IoU 0.50,
0.75 and the mean over 0.50:0.95, area ``all``, the last of ``proposal_nums`` detections).
A faster COCO backend: ``--cfg-options test_evaluator.backend=faster-coco-eval``.
"""
import argparse
import os.path as osp
from collections.abc import Sequence

from mmengine.config import DictAction
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from fcosdet.evaluation import CocoMetric
from fcosdet.evaluation.metrics.coco_utils import pr_curves
from fcosdet.utils.cli import CLIError, build_test_dataset, load_config, run_cli
from fcosdet.utils.safe_pickle import load_results_pickle
from fcosdet.visualization.analysis_plots import plot_pr_curves


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Evaluate dumped detection results')
    parser.add_argument('config', help='test config file (test_evaluator and test dataset)')
    parser.add_argument('pkl_results', help='results .pkl of tools/test.py --out')
    parser.add_argument('--pr-curve', help='write the per-class precision-recall curves to '
                                           'this image file (.png)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values, e.g. test_evaluator.backend=x')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Evaluate, print the metrics and draw the curves."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    if not osp.isfile(args.pkl_results):
        raise CLIError(f'results file not found: {args.pkl_results}')
    if cfg.get('test_evaluator') is None:
        raise CLIError(f'the config {args.config} has no test_evaluator')
    dataset = build_test_dataset(cfg)
    try:
        predictions = load_results_pickle(args.pkl_results)  # never runs code from the file
    except ValueError as err:
        raise CLIError(str(err)) from err
    if not isinstance(predictions, list) or not predictions:
        raise CLIError(f'{args.pkl_results}: expected a non-empty list of results '
                       '(tools/test.py --out)')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'fcosdet')):
        try:
            evaluator = Evaluator(cfg.test_evaluator)
        except (KeyError, ValueError, ImportError, OSError) as err:
            raise CLIError(f'cannot build test_evaluator: {err}') from err
    evaluator.dataset_meta = dataset.metainfo
    try:
        metrics = evaluator.offline_evaluate(predictions, chunk_size=len(predictions))
    except (KeyError, ValueError) as err:
        raise CLIError(f'{args.pkl_results}: {err}') from err
    for key, value in metrics.items():
        print(f'{key}: {value:.4f}' if isinstance(value, float) else f'{key}: {value}')
    if args.pr_curve:
        coco = [m for m in evaluator.metrics if isinstance(m, CocoMetric)]
        if not coco or coco[0].coco_eval is None:
            raise CLIError('--pr-curve needs a CocoMetric in test_evaluator that evaluated '
                           '(not format_only, with detections)')
        metric = coco[0]
        recall, precision = pr_curves(metric.coco_eval, metric.cat_ids)
        plot_pr_curves(recall, precision, metric.coco_eval.params.iouThrs,
                       list(dataset.metainfo['classes']), args.pr_curve)
        print(f'Saved {args.pr_curve}')


if __name__ == '__main__':
    run_cli(main)
