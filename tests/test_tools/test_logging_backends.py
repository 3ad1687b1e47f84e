"""Logging backends of mmengine (TensorBoard, W&B) selected from an fcosdet config."""
from pathlib import Path

import pytest
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.visualization import TensorboardVisBackend, WandbVisBackend
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_setup import write_tiny_config

from fcosdet.registry import VISBACKENDS
from fcosdet.utils import register_all_modules

from ._cli_utils import assert_ok, run_tool, scalar_logs

TENSORBOARD_CFG = """
visualizer = dict(type='DetLocalVisualizer', name='visualizer', vis_backends=[
    dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=1),
                     visualization=dict(type='DetVisualizationHook', draw=True, interval=2))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
"""


def test_backends_built_from_fcosdet_scope(tmp_path: Path):
    register_all_modules(init_default_scope=True)
    assert VISBACKENDS.get('TensorboardVisBackend') is TensorboardVisBackend
    assert VISBACKENDS.get('WandbVisBackend') is WandbVisBackend
    # the visualizer builds its backends through mmengine's registry in fcosdet's scope;
    # W&B imports wandb only when the first value is logged
    backend = MMENGINE_VISBACKENDS.build(dict(type='WandbVisBackend', save_dir=str(tmp_path)))
    assert isinstance(backend, WandbVisBackend)


def test_training_run_writes_tensorboard_events(tiny_data_root: Path, tmp_path: Path):
    config = write_tiny_config(tmp_path / 'tiny_tb.py', tiny_data_root, extra=TENSORBOARD_CFG)
    work_dir = tmp_path / 'work'
    assert_ok(run_tool(['tools/train.py', str(config), '--work-dir', str(work_dir)]))
    (events_file,) = work_dir.glob('*/vis_data/events.out.tfevents.*')
    events = EventAccumulator(str(events_file), size_guidance={'images': 0, 'scalars': 0})
    events.Reload()
    # the same numbers as the json scalar log, at the same steps
    logged = scalar_logs(work_dir)
    train = [row for row in logged if 'loss' in row]
    assert [row['iter'] for row in train] == [1, 2, 3, 4]
    for tag in ('loss', 'loss_cls', 'loss_bbox', 'loss_centerness', 'lr'):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3, 4]
        assert [s.value for s in scalars] == pytest.approx([row[tag] for row in train],
                                                           rel=1e-5)
    (val,) = [row for row in logged if 'coco/bbox_mAP' in row]
    (map_event,) = events.Scalars('coco/bbox_mAP')
    assert map_event.value == pytest.approx(val['coco/bbox_mAP'])
    # the visualization hook's drawings (every 2nd of the 5 val images) went there too
    assert len(events.Tags()['images']) == 3
