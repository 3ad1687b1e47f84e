"""Plot curves and compute training speed from mmengine's scalar json logs.

A log is ``<work_dir>/<timestamp>/vis_data/scalars.json`` (or ``<timestamp>.json``): one JSON
dict per line, train lines with ``lr``, ``time``, ``loss*``, ``epoch``, ``iter``, ``step``;
validation lines with metrics such as ``coco/bbox_mAP`` and ``step``.

Examples::

    python tools/analysis_tools/analyze_logs.py plot_curve scalars.json \
        --keys loss_cls loss_bbox --out losses.png
    python tools/analysis_tools/analyze_logs.py cal_train_time scalars.json
"""
import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fcosdet.utils.cli import run_cli  # noqa: E402

# Keys tried, in order, for the x axis of a curve.
X_KEYS = ('step', 'iter', 'epoch')


def load_json_log(path: str | Path) -> list[dict]:
    """Read a scalar log: one dict per non-empty line.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If a line is not a JSON dict (the message names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'log file not found: {path}')
    records = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}:{line_no} is not valid JSON: {err}') from err
        if not isinstance(record, dict):
            raise ValueError(f'{path}:{line_no} is not a JSON dict')
        records.append(record)
    return records


def extract_curve(records: list[dict], key: str, log_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) values of ``key`` over the lines that have it.

    Returns:
        x from ``step``/``iter``/``epoch`` (first present) or the line index, and y, both [P].

    Raises:
        KeyError: If no line of the log has ``key``.
    """
    rows = [(i, r) for i, r in enumerate(records) if key in r]
    if not rows:
        available = sorted({k for r in records for k in r})
        raise KeyError(f'key "{key}" is not in log {log_name}; available keys: {available}')
    xs = [next((r[k] for k in X_KEYS if k in r), i) for i, r in rows]
    return np.asarray(xs, dtype=np.float64), np.asarray([r[key] for _, r in rows], dtype=float)


def plot_curve(args: argparse.Namespace) -> None:
    """Plot every key of every log into one figure saved to ``args.out``."""
    num_curves = len(args.json_logs) * len(args.keys)
    legend = args.legend or [f'{Path(log).stem}_{key}' for log in args.json_logs
                             for key in args.keys]
    if len(legend) != num_curves:
        raise ValueError(f'--legend needs {num_curves} labels (logs x keys), got {len(legend)}')
    fig, ax = plt.subplots(figsize=(8, 5))
    labels = iter(legend)
    for log in args.json_logs:
        records = load_json_log(log)
        for key in args.keys:
            xs, ys = extract_curve(records, key, log)
            ax.plot(xs, ys, label=next(labels), marker='o' if len(xs) < 20 else None)
    ax.set_xlabel('step')
    ax.legend()
    if args.title:
        ax.set_title(args.title)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    plt.close(fig)
    print(f'Plot saved to {args.out}')


def train_time_stats(records: list[dict], log_name: str) -> dict[str, float]:
    """Mean/std of the seconds per training iteration (lines with ``lr`` and ``time``).

    Raises:
        KeyError: If the log has no training line with ``time``.
    """
    times = np.asarray([r['time'] for r in records if 'time' in r and 'lr' in r], dtype=float)
    if times.size == 0:
        raise KeyError(f'log {log_name} has no training lines with "time" and "lr"')
    return dict(mean=float(times.mean()), std=float(times.std()), num_lines=float(times.size))


def cal_train_time(args: argparse.Namespace) -> None:
    """Print the average training time per iteration of each log."""
    for log in args.json_logs:
        stats = train_time_stats(load_json_log(log), log)
        print(f'{"-" * 5}Analyze train time of {log}{"-" * 5}')
        print(f'average iter time: {stats["mean"]:.4f} s/iter '
              f'(std {stats["std"]:.4f} over {int(stats["num_lines"])} logged iterations)')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments with the ``plot_curve`` and ``cal_train_time`` sub-commands."""
    parser = argparse.ArgumentParser(description='Analyze mmengine json logs')
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='plot scalar curves')
    plot.add_argument('json_logs', nargs='+', help='scalar json logs')
    plot.add_argument('--keys', nargs='+', default=['loss_cls', 'loss_bbox'],
                      help='scalars to plot')
    plot.add_argument('--out', default='curve.png', help='output image file')
    plot.add_argument('--title', default=None, help='figure title')
    plot.add_argument('--legend', nargs='+', default=None, help='one label per log and key')
    timing = sub.add_parser('cal_train_time', help='average seconds per training iteration')
    timing.add_argument('json_logs', nargs='+', help='scalar json logs')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen sub-command."""
    args = parse_args(argv)
    {'plot_curve': plot_curve, 'cal_train_time': cal_train_time}[args.task](args)


if __name__ == '__main__':
    run_cli(main)
