"""A checkpoint of the tiny config's model that detects something (see tests/conftest.py)."""
from pathlib import Path

import pytest
import torch
from tiny_setup import randomise_bn_stats


@pytest.fixture(scope='session')
def tiny_checkpoint(tiny_config: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights, non-trivial BN statistics and class bias 0 (probability about 0.5), so
    that every image gets many detections; with the classes in ``meta['dataset_meta']``."""
    from fcosdet.apis import init_detector

    torch.manual_seed(0)
    model = init_detector(tiny_config)
    randomise_bn_stats(model, seed=1)
    torch.nn.init.zeros_(model.bbox_head.conv_cls.bias)
    path = tmp_path_factory.mktemp('tiny_ckpt') / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=model.dataset_meta)),
               path)
    return path
