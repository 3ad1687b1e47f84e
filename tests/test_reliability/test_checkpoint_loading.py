"""Reading checkpoints safely and loading them strictly for test/inference."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fcosdet.apis import DetInferencer, inference_detector, init_detector
from fcosdet.engine.checkpoint_loading import CheckpointError, read_checkpoint

from ._faults import REPO

PUBLISH = REPO / 'tools' / 'model_converters' / 'publish_model.py'


class _RunsCode:
    """Unpickling this runs ``touch <marker>``: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.fixture(scope='module')
def four_class(tiny_config: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the tiny config (4 classes) with random weights."""
    model = init_detector(tiny_config)
    path = tmp_path_factory.mktemp('ckpt') / 'four.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=('a', 'b', 'c', 'd')))), path)
    return path


def _bad_files(tmp_path: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = dict(truncated=data[:len(data) // 3], empty=b'', text=b'epoch 3, loss 0.5\n',
                 garbage=bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)))
    for name, content in files.items():
        (tmp_path / f'{name}.pth').write_bytes(content)
    return {name: tmp_path / f'{name}.pth' for name in files}


def test_bad_files_give_one_line_naming_the_path(tmp_path, four_class):
    files = _bad_files(tmp_path, four_class)
    expected = {
        'truncated': 'cannot be read: truncated, empty or not a PyTorch checkpoint '
                     '(RuntimeError: PytorchStreamReader failed reading zip archive: failed '
                     'finding central directory)',
        'empty': 'cannot be read: truncated, empty or not a PyTorch checkpoint (EOFError: '
                 'no data)',
        'text': 'cannot be read: truncated, empty or not a PyTorch checkpoint (',
        'garbage': 'is corrupt or holds Python objects other than tensors and plain containers',
    }
    for name, path in files.items():
        with pytest.raises(CheckpointError) as err:
            read_checkpoint(str(path))
        assert str(err.value).startswith(f'checkpoint {path} {expected[name]}'), str(err.value)
        assert '\n' not in str(err.value) and 'weights_only=False' not in str(err.value)
    with pytest.raises(CheckpointError, match=f'checkpoint file not found: {tmp_path}/no.pth$'):
        read_checkpoint(str(tmp_path / 'no.pth'))
    torch.save([torch.ones(1)], tmp_path / 'list.pth')
    with pytest.raises(CheckpointError, match='holds a list, not a dict of weights'):
        read_checkpoint(str(tmp_path / 'list.pth'))


def test_malicious_checkpoint_never_runs_code(tmp_path):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta=_RunsCode(marker)), evil)
    result = subprocess.run([sys.executable, str(PUBLISH), str(evil), str(tmp_path / 'out.pth')],
                            cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f'publish_model.py: error: checkpoint {evil} is corrupt or holds Python objects other '
        'than tensors and plain containers (Trying to load unsupported GLOBAL posix.system); '
        'fcosdet only loads checkpoints with weights_only=True')
    assert not marker.exists() and not list(tmp_path.glob('out*'))


def test_init_detector_is_strict_about_shapes(tiny_config, four_class, tmp_path):
    three = init_detector(tiny_config, cfg_options={'model.bbox_head.num_classes': 3})
    path = tmp_path / 'three.pth'
    torch.save(dict(state_dict=three.state_dict()), path)
    with pytest.raises(CheckpointError) as err:
        init_detector(tiny_config, str(path))
    assert str(err.value) == (
        f'checkpoint {path} does not fit the model: 2 tensor(s) differ in shape: '
        'bbox_head.conv_cls.weight (checkpoint [3, 32, 3, 3], model [4, 32, 3, 3]), '
        'bbox_head.conv_cls.bias (checkpoint [3], model [4]) (num_classes: checkpoint 3, '
        'model 4). Use a checkpoint of this config, or allow a partial load explicitly '
        '(--allow-partial-load)')
    partial = init_detector(tiny_config, str(path), allow_partial_load=True, fast_path=False)
    loaded = three.state_dict()
    for key, value in partial.state_dict().items():
        if not key.startswith('bbox_head.conv_cls'):
            assert torch.equal(value, loaded[key]), key
    full = init_detector(tiny_config, str(four_class), fast_path=False)
    expected = torch.load(four_class, weights_only=True)['state_dict']
    assert all(torch.equal(v, expected[k]) for k, v in full.state_dict().items())


def test_missing_tensors_are_an_error(tiny_config, four_class, tmp_path):
    state = torch.load(four_class, weights_only=True)['state_dict']
    del state['neck.fpn_convs.0.conv.weight']
    state['extra.weight'] = torch.zeros(1)
    path = tmp_path / 'missing.pth'
    torch.save(dict(state_dict=state), path)
    with pytest.raises(CheckpointError, match=r'1 model tensor\(s\) are not in it: '
                                              r'neck.fpn_convs.0.conv.weight \(num_classes: '
                                              r'checkpoint 4, model 4\)'):
        init_detector(tiny_config, str(path))


def test_tools_test_rejects_other_num_classes(tiny_config, tmp_path):
    three = init_detector(tiny_config, cfg_options={'model.bbox_head.num_classes': 3})
    path = tmp_path / 'three.pth'
    torch.save(dict(state_dict=three.state_dict(),
                    meta=dict(dataset_meta=dict(classes=('x', 'y', 'z')))), path)
    result = subprocess.run([sys.executable, 'tools/test.py', tiny_config, str(path),
                             '--work-dir', str(tmp_path / 'wd')], cwd=REPO, capture_output=True,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f'test.py: error: checkpoint {path} does not fit the model: 2 tensor(s) differ in '
        'shape: bbox_head.conv_cls.weight (checkpoint [3, 32, 3, 3], model [4, 32, 3, 3]), '
        'bbox_head.conv_cls.bias (checkpoint [3], model [4]) (num_classes: checkpoint 3, '
        'model 4). Use a checkpoint of this config, or allow a partial load explicitly '
        '(--allow-partial-load)')


@pytest.mark.parametrize('shape, dtype', [((3, 40, 50), np.uint8), ((40, 50, 3), np.float32),
                                          ((40, 50, 4), np.uint8), ((40, 50, 1), np.uint8)])
def test_inference_detector_rejects_other_layouts(tiny_config, shape, dtype):
    model = init_detector(tiny_config)
    with pytest.raises(ValueError) as err:
        inference_detector(model, np.zeros(shape, dtype))
    assert str(err.value) == ('inference_detector: an image array must be H x W x 3 uint8 BGR '
                              f'(or H x W uint8 grayscale), got shape {shape} '
                              f'{np.dtype(dtype).name}')


@pytest.mark.parametrize('shape', [(0, 0, 3), (0, 7, 3), (7, 0)])
def test_empty_image_array_is_one_error(tiny_config, shape):
    """Was: ZeroDivisionError in the resize."""
    model = init_detector(tiny_config)
    message = f'an image array must have pixels (height and width >= 1), got shape {shape}'
    with pytest.raises(ValueError) as err:
        inference_detector(model, np.zeros(shape, np.uint8))
    assert str(err.value) == message
    inferencer = DetInferencer(tiny_config, device='cpu', show_progress=False)
    with pytest.raises(ValueError) as err:
        inferencer(np.zeros(shape, np.float32))
    assert str(err.value) == message


def test_inference_detector_gray_equals_replicated_bgr(tiny_config):
    model = init_detector(tiny_config)
    gray = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    a, b = inference_detector(model, [gray, np.repeat(gray[..., None], 3, axis=2)])
    torch.testing.assert_close(a.pred_instances.scores, b.pred_instances.scores)
    torch.testing.assert_close(a.pred_instances.bboxes, b.pred_instances.bboxes)


def test_runner_is_strict_outside_training_and_partial_when_fine_tuning(tmp_path):
    from ._toy import toy_runner
    path = tmp_path / 'wide.pth'
    torch.save(dict(state_dict={'fc.weight': torch.ones(1, 3), 'fc.bias': torch.full((1,), 2.)}),
               path)
    runner = toy_runner(tmp_path / 'wd', max_iters=1, name='strict')
    with pytest.raises(CheckpointError, match=r'fc.weight \(checkpoint \[1, 3\], model \[1, 2\]\)'):
        runner.load_checkpoint(str(path))  # test/val: the train loop is not built
    runner.train()  # builds the train loop: loading now means fine-tuning
    runner.load_checkpoint(str(path))
    assert runner.model.fc.bias.item() == 2.0 and runner.model.fc.weight.shape == (1, 2)
    runner.cfg['allow_partial_load'] = False  # what tools/test.py sets without the flag
    with pytest.raises(CheckpointError):
        runner.load_checkpoint(str(path))
