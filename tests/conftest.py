"""Session fixtures shared by the test suite: a tiny demo dataset and a tiny training config.

``tiny_data_root``: 8 train / 5 val images of at most 96x128 (the odd val count makes
distributed tests exercise the sampler's padding), generated once per session.
``tiny_config``: path of a config that trains a very small FCOS (ResNet-18 at 1/4 width, FPN
and head at 32 channels, one tower conv) for 2 epochs of 4 iterations on that data, validates
with CocoMetric after every epoch, and runs without workers. It inherits the shipped
``configs/_base_/default_runtime.py``. Tests needing changes should pass ``--cfg-options`` or
call :func:`write_tiny_config` with ``extra`` lines.
``tiny_checkpoint``: a checkpoint of the tiny config's model, random weights that detect
something.
"""
from pathlib import Path

import pytest
import torch
from tiny_setup import (
    TINY_IMG_SIZE,
    TINY_NUM_TRAIN,
    TINY_NUM_VAL,
    randomise_bn_stats,
    write_tiny_config,
)


@pytest.fixture(scope='session')
def tiny_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated demo dataset (8 train / 5 val images, at most 96x128)."""
    from fcosdet.datasets.demo_dataset import generate_demo_dataset
    root = tmp_path_factory.mktemp('tiny_data') / 'demo'
    return generate_demo_dataset(root, num_train=TINY_NUM_TRAIN, num_val=TINY_NUM_VAL,
                                 img_size=TINY_IMG_SIZE, seed=0)


@pytest.fixture(scope='session')
def tiny_config(tmp_path_factory: pytest.TempPathFactory, tiny_data_root: Path) -> str:
    """Path of the tiny training config (see the module docstring)."""
    path = tmp_path_factory.mktemp('tiny_config') / 'fcos_tiny.py'
    return str(write_tiny_config(path, tiny_data_root))


@pytest.fixture(scope='session')
def tiny_checkpoint(tiny_config: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the tiny config's model that detects something: random weights,
    non-trivial BN statistics and class bias 0 (probability about 0.5), classes in
    ``meta['dataset_meta']``."""
    from fcosdet.apis import init_detector

    torch.manual_seed(0)
    model = init_detector(tiny_config)
    randomise_bn_stats(model, seed=1)
    torch.nn.init.zeros_(model.bbox_head.conv_cls.bias)
    path = tmp_path_factory.mktemp('tiny_ckpt') / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=model.dataset_meta)),
               path)
    return path
