from types import SimpleNamespace

import mmcv
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from fcosdet.engine.hooks.visualization_hook import DetVisualizationHook
from fcosdet.registry import HOOKS
from fcosdet.structures import DetDataSample
from fcosdet.visualization import DetLocalVisualizer


def write_images(folder, names):
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        mmcv.imwrite(np.full((48, 64, 3), 10 * i, np.uint8), str(path))
        paths.append(str(path))
    return paths


def make_outputs(paths):
    outputs = []
    for path in paths:
        sample = DetDataSample(metainfo=dict(img_path=path))
        sample.pred_instances = InstanceData(bboxes=torch.tensor([[2.0, 2.0, 40.0, 36.0]]),
                                             labels=torch.tensor([0]),
                                             scores=torch.tensor([0.9]))
        outputs.append(sample)
    return outputs


def test_test_out_dir_gets_one_png_per_image(tmp_path):
    DetLocalVisualizer.get_instance('hook_test_vis', alpha=1.0)
    paths = write_images(tmp_path, ['a.jpg', 'b.jpg', 'c.png'])
    runner = SimpleNamespace(work_dir=str(tmp_path / 'work'), timestamp='20240101_000000', iter=0)
    hook = HOOKS.build(dict(type='DetVisualizationHook', draw=True, test_out_dir='vis'))
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, None, make_outputs(paths[:2]))
    hook.after_test_iter(runner, 1, None, make_outputs(paths[2:]))
    out_dir = tmp_path / 'work' / '20240101_000000' / 'vis'
    assert sorted(p.name for p in out_dir.iterdir()) == ['a.png', 'b.png', 'c.png']
    drawn = mmcv.imread(str(out_dir / 'b.png'), channel_order='rgb')
    assert drawn.shape == (48, 64, 3)  # predictions only: no gt in the samples
    assert (drawn[36, 20] > 200).sum() == 1  # the box edge, in class 0's colour
    assert (drawn[30, 20] == 10).all()  # inside: the original image (value 10 for image 1)


def test_val_draws_every_interval_sample_to_backends(tmp_path):
    DetLocalVisualizer.get_instance('hook_val_vis', save_dir=str(tmp_path),
                                    vis_backends=[dict(type='LocalVisBackend')])
    paths = write_images(tmp_path, [f'{i}.jpg' for i in range(5)])
    runner = SimpleNamespace(work_dir=str(tmp_path), timestamp='t', iter=7)
    hook = DetVisualizationHook(draw=True, interval=2)
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, None, make_outputs(paths[:3]))
    hook.after_val_iter(runner, 1, None, make_outputs(paths[3:]))
    written = sorted(p.name for p in (tmp_path / 'vis_data' / 'vis_image').iterdir())
    assert written == ['val_0.jpg_7.png', 'val_2.jpg_7.png', 'val_4.jpg_7.png']


def test_draw_false_writes_nothing(tmp_path):
    DetLocalVisualizer.get_instance('hook_off_vis')
    paths = write_images(tmp_path, ['a.jpg'])
    runner = SimpleNamespace(work_dir=str(tmp_path / 'work'), timestamp='t', iter=0)
    hook = DetVisualizationHook(draw=False, test_out_dir='vis')
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, None, make_outputs(paths))
    assert not (tmp_path / 'work').exists()


def test_bad_interval_and_missing_img_path(tmp_path):
    with pytest.raises(ValueError, match='interval'):
        DetVisualizationHook(interval=0)
    DetLocalVisualizer.get_instance('hook_err_vis')
    hook = DetVisualizationHook(draw=True)
    runner = SimpleNamespace(work_dir=str(tmp_path), timestamp='t', iter=0)
    with pytest.raises(KeyError, match='img_path'):
        hook.after_test_iter(runner, 0, None, [DetDataSample()])


def test_runner_test_with_show_dir_writes_one_png_per_image(tiny_config, tiny_data_root,
                                                             tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(tiny_config)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.visualizer.name = 'runner_hook_vis'
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=True,
                                           test_out_dir='show')
    runner = Runner.from_cfg(cfg)
    runner.test()
    out_dir = tmp_path / 'work' / runner.timestamp / 'show'
    val_images = sorted(p.stem for p in (tiny_data_root / 'val').glob('*.png'))
    assert len(val_images) == 5
    assert sorted(p.stem for p in out_dir.glob('*.png')) == val_images
    # gt (left) and predictions (right) side by side, each at the original image size.
    original = mmcv.imread(str(tiny_data_root / 'val' / f'{val_images[0]}.png'))
    drawn = mmcv.imread(str(out_dir / f'{val_images[0]}.png'))
    assert drawn.shape == (original.shape[0], 2 * original.shape[1], 3)
