"""init_detector's ``backend`` argument and the config key ``fast_path`` (PyTorch backend)."""
import numpy as np
import pytest
import torch
from mmengine.runner import save_checkpoint
from tiny_setup import randomise_bn_stats

from fcosdet.apis import inference_detector, init_detector

FP32_FAST_PATH = {'fast_path': dict(channels_last=True, fuse_bn=True, bf16=False)}


@pytest.fixture
def checkpoint(api_config, tmp_path):
    """Weights with non-trivial BN statistics and a class bias of 0 (many detections)."""
    torch.manual_seed(0)
    model = init_detector(api_config)
    randomise_bn_stats(model, seed=3, mean_scale=0.2)
    torch.nn.init.zeros_(model.bbox_head.conv_cls.bias)
    path = tmp_path / 'model.pth'
    save_checkpoint(dict(state_dict=model.state_dict()), str(path))
    return str(path)


@pytest.mark.parametrize('options', [FP32_FAST_PATH, None])  # the key, or the default
def test_config_fast_path_folds_bn_and_keeps_detections(api_config, checkpoint, options):
    plain = init_detector(api_config, checkpoint, fast_path=False)
    fast = init_detector(api_config, checkpoint, cfg_options=options)
    kinds = {type(m) for m in plain.backbone.modules()}
    assert torch.nn.BatchNorm2d in kinds
    assert torch.nn.BatchNorm2d not in {type(m) for m in fast.backbone.modules()}
    assert fast.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not fast.training
    image = np.random.default_rng(0).integers(0, 256, (70, 150, 3), dtype=np.uint8)
    expected = inference_detector(plain, image).pred_instances
    actual = inference_detector(fast, image).pred_instances
    assert len(expected) == 20  # max_per_img of the config
    assert torch.equal(actual.labels, expected.labels)
    torch.testing.assert_close(actual.bboxes, expected.bboxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(actual.scores, expected.scores, atol=1e-5, rtol=0)


def test_fast_path_off_by_flag_key_or_without_checkpoint(api_config, checkpoint):
    def is_fast(model):
        return model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)

    assert is_fast(init_detector(api_config, checkpoint))
    assert not is_fast(init_detector(api_config, checkpoint, fast_path=False))
    assert not is_fast(init_detector(api_config, checkpoint, cfg_options={'fast_path': None}))
    # random weights: a model being built (to be saved or trained) keeps its BN layers
    model = init_detector(api_config)
    assert not is_fast(model) and 'backbone.bn1.running_mean' in model.state_dict()
    assert is_fast(init_detector(api_config, cfg_options=FP32_FAST_PATH))


def test_bad_backend_and_fast_path_values(api_config, checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"backend must be one of \('pytorch', 'onnxruntime'\), "
                                         "got 'tensorrt'"):
        init_detector(api_config, checkpoint, backend='tensorrt')
    with pytest.raises(ValueError, match="'onnxruntime' needs the .onnx file.*None"):
        init_detector(api_config, backend='onnxruntime')
    onnx_file = tmp_path / 'model.onnx'
    onnx_file.write_bytes(b'')
    with pytest.raises(ValueError, match="model.onnx is an ONNX file: use backend 'onnxruntime'"):
        init_detector(api_config, str(onnx_file))
    with pytest.raises(KeyError, match="unknown key 'fuse'"):
        init_detector(api_config, checkpoint, cfg_options={'fast_path': dict(fuse=True)})
    with pytest.raises(TypeError, match='fast_path.bf16 must be a bool'):
        init_detector(api_config, checkpoint, cfg_options={'fast_path': dict(bf16='yes')})
