"""NumClassCheckHook stops a run whose head class count differs from the dataset's classes."""
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from fcosdet.utils import register_all_modules


@pytest.mark.parametrize('entry', ['train', 'val', 'test'])
def test_mismatch_stops_before_the_first_iteration(tiny_config, tmp_path, entry):
    register_all_modules()
    cfg = Config.fromfile(tiny_config)
    assert {'type': 'NumClassCheckHook'} in cfg.custom_hooks  # from default_runtime.py
    cfg.model.bbox_head.num_classes = 3  # the tiny dataset has 4 classes
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as err:
        getattr(runner, entry)()
    message = str(err.value)
    assert f'num_classes is 3 but the {entry} dataset (CocoDataset) has 4 classes' in message
    assert "('ellipse', 'rectangle', 'triangle', 'cross')" in message
    assert 'model.bbox_head.num_classes=4' in message
    assert not list(tmp_path.rglob('*.pth'))  # stopped before any training step or checkpoint


def test_matching_class_count_passes(tiny_config, tmp_path):
    register_all_modules()
    cfg = Config.fromfile(tiny_config)
    cfg.work_dir = str(tmp_path)
    metrics = Runner.from_cfg(cfg).test()  # untrained model, but the check lets it run
    assert 'coco/bbox_mAP' in metrics
