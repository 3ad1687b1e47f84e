"""Measure inference latency, the split of a training step, or data-loader throughput on CPU.

Examples::

    python tools/analysis_tools/benchmark.py CONFIG --task inference --shape 800 1216
    python tools/analysis_tools/benchmark.py CONFIG --task inference --fast-path fuse_bn \
        channels_last bf16
    python tools/analysis_tools/benchmark.py CONFIG --task inference --backend onnxruntime \
        --onnx model.onnx
    python tools/analysis_tools/benchmark.py CONFIG --task train --shape 256 320 --batch-size 8
    python tools/analysis_tools/benchmark.py CONFIG --task dataloader

Inputs are synthetic (random images and boxes) except for ``dataloader``, which reads the
config's ``train_dataloader``. Every figure is a median/min/max over ``--repeat`` runs after
``--warmup`` runs; nothing here asserts a speed, it only prints (and writes ``--json``).
"""
import argparse
import json
import logging
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from mmengine.structures import InstanceData
from torch import Tensor, nn

from fcosdet.apis import init_detector, init_ort_detector
from fcosdet.models.utils import FAST_PATH_KEYS, apply_fast_path
from fcosdet.registry import MODELS
from fcosdet.structures import DetDataSample
from fcosdet.utils import register_all_modules
from fcosdet.utils.cli import CLIError, check_checkpoint, load_config, run_cli

TASKS = ('inference', 'train', 'dataloader')
TRAIN_PHASES = ('backbone_neck', 'head', 'target_assignment', 'loss', 'backward', 'optimizer')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='CPU benchmark of a detector')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='checkpoint (random weights when not given)')
    parser.add_argument('--task', choices=TASKS, default='inference')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'),
                        help='synthetic input height and width (inference/train)')
    parser.add_argument('--batch-size', type=int, default=1, help='images per batch')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs (batches)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs first')
    parser.add_argument('--threads', type=int, default=2, help='torch / onnxruntime threads')
    parser.add_argument('--fast-path', nargs='*', choices=FAST_PATH_KEYS, default=None,
                        help="inference fast paths; default: the config's `fast_path` key")
    parser.add_argument('--backend', choices=('pytorch', 'onnxruntime'), default='pytorch')
    parser.add_argument('--onnx', help='ONNX file of the model (with --backend onnxruntime)')
    parser.add_argument('--num-workers', type=int, help='override the data loader workers')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values')
    return parser.parse_args(argv)


def summarize(times: Sequence[float], batch_size: int) -> dict[str, float]:
    """Median/min/max seconds of ``times`` (one entry per batch) and images per second."""
    median = statistics.median(times)
    return dict(median_s=median, min_s=min(times), max_s=max(times),
                images_per_s=batch_size / median if median > 0 else float('inf'))


def time_runs(fn: Callable[[], object], warmup: int, repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def synthetic_samples(batch_size: int, height: int, width: int,
                      num_boxes: int = 0, num_classes: int = 1,
                      seed: int = 0) -> list[DetDataSample]:
    """Data samples of ``[H, W]`` images, optionally with ``num_boxes`` random gt boxes each."""
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch_size):
        meta = dict(img_shape=(height, width), ori_shape=(height, width), scale_factor=(1., 1.),
                    pad_shape=(height, width), batch_input_shape=(height, width))
        sample = DetDataSample(metainfo=meta)
        size = torch.rand(num_boxes, 2, generator=gen) * 0.6 * min(height, width) + 8
        corner = torch.rand(num_boxes, 2, generator=gen) * (
            torch.tensor([width, height]) - size).clamp(min=1)
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([corner, corner + size], dim=1),
            labels=torch.randint(0, num_classes, (num_boxes,), generator=gen))
        samples.append(sample)
    return samples


def build_inference_model(cfg: Config, args: argparse.Namespace) -> tuple[nn.Module, dict]:
    """The eval-mode model for ``--backend`` with the selected fast paths applied."""
    if args.backend == 'onnxruntime':
        if not args.onnx:
            raise CLIError('--backend onnxruntime needs --onnx FILE')
        return init_ort_detector(cfg, args.onnx, num_threads=args.threads), {}
    model = init_detector(cfg, args.checkpoint)
    spec = args.fast_path if args.fast_path is not None else cfg.get('fast_path')
    try:
        return model, apply_fast_path(model, spec)
    except (KeyError, TypeError) as err:
        raise CLIError(f'{args.config}: {err}') from err


def stress_scores(cls_scores: list[Tensor]) -> list[Tensor]:
    """Class logits for which nearly every (point, class) pair passes ``score_thr``: the
    worst case of post-processing (``nms_pre`` candidates on every level)."""
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s.shape, generator=gen) + 2.0 for s in cls_scores]


def bench_inference(cfg: Config, args: argparse.Namespace) -> dict:
    """Latency of predict (network + post-processing) and of the post-processing alone."""
    model, fast_path = build_inference_model(cfg, args)
    height, width = args.shape
    inputs = torch.randn(args.batch_size, 3, height, width)
    samples = synthetic_samples(args.batch_size, height, width)
    metas = [s.metainfo for s in samples]
    head = model.bbox_head
    with torch.no_grad():
        predict = summarize(time_runs(lambda: model(inputs, samples, mode='predict'),
                                      args.warmup, args.repeat), args.batch_size)
        outputs = model(inputs, mode='tensor')
        post = summarize(time_runs(lambda: head.predict_by_feat(*outputs, batch_img_metas=metas),
                                   1, args.repeat), args.batch_size)
        stress = (stress_scores(outputs[0]), *outputs[1:])
        post_stress = summarize(time_runs(
            lambda: head.predict_by_feat(*stress, batch_img_metas=metas), 1, args.repeat),
            args.batch_size)
    return dict(backend=args.backend, fast_path=fast_path, inference=predict,
                postprocess=post, postprocess_share=post['median_s'] / predict['median_s'],
                postprocess_stress=post_stress,
                postprocess_stress_share=post_stress['median_s'] / predict['median_s'])


def build_train_model(cfg: Config) -> tuple[nn.Module, object]:
    """The model in train mode (no pretrained download) and its optimizer wrapper."""
    register_all_modules()
    model_cfg = cfg.model.copy()
    if 'init_cfg' in model_cfg.get('backbone', {}):
        model_cfg.backbone = dict(model_cfg.backbone, init_cfg=None)
    model = MODELS.build(model_cfg)  # PyTorch's default init: weights do not change the timing
    model.train()
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # silence the per-parameter options of the optimizer
    try:
        return model, build_optim_wrapper(model, cfg.optim_wrapper)
    finally:
        logger.setLevel(level)


def train_step_phases(model: nn.Module, optim_wrapper: object, inputs: Tensor,
                      samples: list[DetDataSample]) -> dict[str, float]:
    """Seconds of each phase of one training step (see :data:`TRAIN_PHASES`) and the total.

    Target assignment is timed by a separate ``get_targets`` call; ``loss`` is the time of
    ``loss_by_feat`` minus it (``loss_by_feat`` assigns internally).
    """
    head = model.bbox_head
    times = {}
    clock = time.perf_counter()
    feats = model.extract_feat(inputs)
    times['backbone_neck'] = time.perf_counter() - clock
    clock = time.perf_counter()
    outs = head(feats)
    times['head'] = time.perf_counter() - clock
    gt_instances = [s.gt_instances for s in samples]
    clock = time.perf_counter()
    with torch.no_grad():
        points = head.prior_generator.grid_priors([tuple(s.shape[-2:]) for s in outs[0]],
                                                  dtype=inputs.dtype)
        head.get_targets(points, gt_instances)
    times['target_assignment'] = time.perf_counter() - clock
    clock = time.perf_counter()
    losses = head.loss_by_feat(*outs, gt_instances, [s.metainfo for s in samples])
    loss = sum(losses.values())
    times['loss'] = max(time.perf_counter() - clock - times['target_assignment'], 0.0)
    clock = time.perf_counter()
    loss.backward()
    times['backward'] = time.perf_counter() - clock
    clock = time.perf_counter()
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    times['optimizer'] = time.perf_counter() - clock
    times['total'] = sum(times[phase] for phase in TRAIN_PHASES)
    return times


def bench_train(cfg: Config, args: argparse.Namespace) -> dict:
    """Per-phase medians of a training step on synthetic images with 8 random boxes each."""
    model, optim_wrapper = build_train_model(cfg)
    height, width = args.shape
    samples = synthetic_samples(args.batch_size, height, width, num_boxes=8,
                                num_classes=model.bbox_head.num_classes)
    inputs = torch.randn(args.batch_size, 3, height, width)
    for _ in range(args.warmup):
        train_step_phases(model, optim_wrapper, inputs, samples)
    runs = [train_step_phases(model, optim_wrapper, inputs, samples) for _ in range(args.repeat)]
    step = summarize([run['total'] for run in runs], args.batch_size)
    phases = {phase: statistics.median(run[phase] for run in runs) for phase in TRAIN_PHASES}
    share = {phase: seconds / sum(phases.values()) for phase, seconds in phases.items()}
    return dict(step=step, phases_s=phases, phases_share=share)


def bench_dataloader(cfg: Config, args: argparse.Namespace) -> dict:
    """Images per second of the config's ``train_dataloader`` (after ``--warmup`` batches)."""
    register_all_modules()
    loader_cfg = cfg.train_dataloader.copy()
    if args.num_workers is not None:
        loader_cfg.num_workers = args.num_workers
        loader_cfg.persistent_workers = args.num_workers > 0
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    batches = iter(loader)
    times, sizes = [], []
    for index in range(args.warmup + args.repeat):
        clock = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:  # a short epoch: start the next one
            batches = iter(loader)
            batch = next(batches)
        if index >= args.warmup:
            times.append(time.perf_counter() - clock)
            sizes.append(len(batch['inputs']))
    result = summarize(times, loader_cfg.batch_size)
    result.update(images=sum(sizes), images_per_s=sum(sizes) / sum(times))
    return dict(num_workers=loader_cfg.get('num_workers', 0), batch=result)


def machine_info(threads: int) -> dict:
    """CPU, thread count and library versions of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if 'model name' in line)
    except (OSError, StopIteration):
        pass
    return dict(cpu=cpu, threads=threads, torch=torch.__version__,
                python=platform.python_version())


def format_report(result: dict) -> str:
    """Human-readable lines of a benchmark result."""
    lines = [f"{result['task']} benchmark of {result['config']} ({result['machine']['cpu']}, "
             f"{result['machine']['threads']} threads, torch {result['machine']['torch']})"]
    for key, value in result['figures'].items():
        if isinstance(value, dict) and 'median_s' in value:
            lines.append(f"  {key:<22} median {value['median_s']:.4f} s  min {value['min_s']:.4f}"
                         f"  max {value['max_s']:.4f}  {value['images_per_s']:.2f} img/s")
        elif isinstance(value, dict):
            lines.append(f'  {key:<22} ' + '  '.join(
                f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}' for k, v in value.items()))
        else:
            lines.append(f'  {key:<22} {value:.4f}' if isinstance(value, float)
                         else f'  {key:<22} {value}')
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the selected benchmark, print it and optionally write JSON."""
    args = parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.batch_size < 1 or args.threads < 1:
        raise CLIError('--repeat, --batch-size and --threads must be >= 1 and --warmup >= 0')
    if args.checkpoint is not None:
        check_checkpoint(args.checkpoint)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    bench = dict(inference=bench_inference, train=bench_train, dataloader=bench_dataloader)
    result = dict(config=args.config, task=args.task, machine=machine_info(args.threads),
                  settings=dict(shape=args.shape, batch_size=args.batch_size,
                                repeat=args.repeat, warmup=args.warmup),
                  figures=bench[args.task](cfg, args))
    print(format_report(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    run_cli(main)
