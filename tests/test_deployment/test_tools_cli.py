"""tools/analysis_tools/benchmark.py and tools/deployment/pytorch2onnx.py on the tiny model.

Only the figures' structure and arithmetic are checked, never a speed.
"""
import importlib.util
import json
import re
from pathlib import Path

import onnx
import pytest
import torch

from fcosdet.utils.cli import CLIError

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def _load(relative: str):
    path = TOOLS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = _load('analysis_tools/benchmark.py')
pytorch2onnx = _load('deployment/pytorch2onnx.py')


def test_summarize_arithmetic():
    result = benchmark.summarize([0.5, 0.1, 0.2, 0.4], batch_size=3)
    assert result['median_s'] == pytest.approx(0.3)
    assert (result['min_s'], result['max_s']) == (0.1, 0.5)
    assert result['images_per_s'] == pytest.approx(10.0)


def test_synthetic_samples_boxes_inside_image():
    samples = benchmark.synthetic_samples(3, 40, 60, num_boxes=5, num_classes=2)
    assert len(samples) == 3
    for sample in samples:
        boxes = sample.gt_instances.bboxes
        assert boxes.shape == (5, 4)
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 60).all()
        assert (boxes[:, 3] <= 40).all()
        assert set(sample.gt_instances.labels.tolist()) <= {0, 1}
        assert sample.metainfo['batch_input_shape'] == (40, 60)


def test_train_phases_sum_to_total(tiny_files):
    cfg = benchmark.load_config(tiny_files[0])
    cfg.optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
    model, optim_wrapper = benchmark.build_train_model(cfg)
    samples = benchmark.synthetic_samples(2, 64, 64, num_boxes=3, num_classes=3)
    before = model.bbox_head.conv_reg.weight.detach().clone()
    times = benchmark.train_step_phases(model, optim_wrapper, torch.randn(2, 3, 64, 64), samples)
    assert set(times) == {*benchmark.TRAIN_PHASES, 'total'}
    assert times['total'] == pytest.approx(sum(times[p] for p in benchmark.TRAIN_PHASES))
    assert all(value >= 0 for value in times.values())
    # the step really trained: the optimizer changed the weights and cleared the gradients
    assert not torch.equal(model.bbox_head.conv_reg.weight, before)
    assert model.bbox_head.conv_reg.weight.grad is None or not \
        model.bbox_head.conv_reg.weight.grad.any()


def test_inference_benchmark_json(tiny_files, tmp_path):
    out = tmp_path / 'bench.json'
    benchmark.main([tiny_files[0], '--checkpoint', tiny_files[1], '--shape', '64', '64',
                    '--repeat', '2', '--warmup', '0', '--threads', '1',
                    '--fast-path', 'fuse_bn', '--json', str(out)])
    result = json.loads(out.read_text())
    figures = result['figures']
    assert result['machine']['threads'] == 1
    assert figures['fast_path'] == dict(channels_last=False, fuse_bn=True, bf16=False)
    inference = figures['inference']
    assert inference['min_s'] <= inference['median_s'] <= inference['max_s']
    assert figures['postprocess_share'] == pytest.approx(
        figures['postprocess']['median_s'] / inference['median_s'])


def test_benchmark_cli_errors(tiny_files, tmp_path):
    with pytest.raises(CLIError, match='--onnx'):
        benchmark.main([tiny_files[0], '--backend', 'onnxruntime', '--repeat', '1'])
    with pytest.raises(CLIError, match='--repeat'):
        benchmark.main([tiny_files[0], '--repeat', '0'])
    with pytest.raises(CLIError, match='missing.pth'):
        benchmark.main([tiny_files[0], '--checkpoint', str(tmp_path / 'missing.pth')])
    with pytest.raises(SystemExit):  # argparse rejects an unknown fast path
        benchmark.parse_args([tiny_files[0], '--fast-path', 'fp16'])


def test_pytorch2onnx_exports_and_verifies(tiny_files, tmp_path, capsys):
    out = tmp_path / 'tiny.onnx'
    pytorch2onnx.main([*tiny_files, '--out', str(out), '--raw', '--shape', '64', '96',
                       '--verify'])
    graph = onnx.load(str(out))
    assert [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim] == \
        ['N', '', 'H', 'W']
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert float(line.rsplit(' ', 1)[1]) < 1e-4
    with pytest.raises(CLIError, match='.onnx'):
        pytorch2onnx.main([*tiny_files, '--out', str(tmp_path / 'model.bin')])
    with pytest.raises(CLIError, match='--calib-images must be positive, got 0'):
        pytorch2onnx.main([*tiny_files, '--out', str(out), '--raw', '--int8', '--calib-images',
                           '0'])
    with pytest.raises(CLIError, match='drop --static'):
        pytorch2onnx.main([*tiny_files, '--out', str(out), '--raw', '--int8', '--static',
                           '--batch-size', '2'])
    # the tiny config's dataset does not exist: the error names the file
    with pytest.raises(CLIError, match='none.json'):
        pytorch2onnx.main([*tiny_files, '--out', str(tmp_path / 'int8.onnx'), '--raw', '--int8'])
    assert not (tmp_path / 'int8.onnx').exists()


def test_pytorch2onnx_end2end_by_default(tiny_files, tmp_path, capsys):
    out = tmp_path / 'e2e.onnx'
    pytorch2onnx.main([*tiny_files, '--out', str(out), '--shape', '64', '96', '--verify'])
    graph = onnx.load(str(out))
    assert [i.name for i in graph.graph.input] == ['images', 'img_shapes']
    assert [o.name for o in graph.graph.output] == ['dets', 'scores', 'labels', 'num_dets']
    lines = capsys.readouterr().out.strip().splitlines()
    assert '(end to end)' in lines[0] and 'dynamic N/H/W' in lines[0]
    counts = re.search(r'pytorch (\d+), onnxruntime (\d+), matched (\d+)', lines[1]).groups()
    assert counts[0] == counts[1] == counts[2] and int(counts[0]) > 0
    box_diff, score_diff = re.search(r'boxes (\S+), scores (\S+)$', lines[1]).groups()
    assert float(box_diff) < 1e-3 and float(score_diff) < 1e-4
    num_nodes = len(graph.graph.node)
    pytorch2onnx.main([*tiny_files, '--out', str(out), '--static', '--shape', '64', '96',
                       '--batch-size', '2', '--slim', '--verify'])
    slim = onnx.load(str(out))
    dims = [d.dim_value for d in slim.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 64, 96]
    # onnxslim folds the (now static) shape arithmetic; the metadata stays and so do the results
    assert len(slim.graph.node) < num_nodes / 2
    assert [p.key for p in slim.metadata_props] == [p.key for p in graph.metadata_props]
    counts = re.search(r'pytorch (\d+), onnxruntime (\d+), matched (\d+)',
                       capsys.readouterr().out).groups()
    assert counts[0] == counts[1] == counts[2]
    with pytest.raises(CLIError, match='exclude each other'):
        pytorch2onnx.main([*tiny_files, '--out', str(out), '--int8', '--fp16'])
    with pytest.raises(CLIError, match='drop --raw'):
        pytorch2onnx.main([*tiny_files, '--out', str(out), '--fp16', '--raw'])
    with pytest.raises(CLIError, match='--slim applies to the end-to-end file'):
        pytorch2onnx.main([*tiny_files, '--out', str(out), '--slim', '--raw'])


def test_dataloader_benchmark_counts_images(tiny_files, tmp_path):
    cfg_path = tmp_path / 'loader.py'
    cfg_path.write_text(Path(tiny_files[0]).read_text() + f"""
train_dataloader = dict(
    batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='DemoCocoDataset', data_root={str(tmp_path / 'demo')!r},
                 demo_cfg=dict(num_train=3, num_val=1, img_size=(64, 64)),
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LoadAnnotations', with_bbox=True),
                           dict(type='PackDetInputs')]))
""")
    out = tmp_path / 'loader.json'
    benchmark.main([str(cfg_path), '--task', 'dataloader', '--repeat', '3', '--warmup', '1',
                    '--json', str(out)])
    figures = json.loads(out.read_text())['figures']
    assert figures['num_workers'] == 0
    batch = figures['batch']
    # 3 images in batches of 2: warm-up [2], then timed [1] (epoch end), [2], [1]
    assert batch['images'] == 4
    assert batch['images_per_s'] > 0 and batch['min_s'] <= batch['median_s'] <= batch['max_s']
