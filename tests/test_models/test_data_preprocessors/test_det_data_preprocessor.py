"""DetDataPreprocessor: channel flip, normalisation, padding and the shapes it records."""
import pytest
import torch

from fcosdet.registry import MODELS
from fcosdet.structures import DetDataSample

MEAN, STD = (10.0, 20.0, 30.0), (2.0, 4.0, 5.0)


def build(**kwargs):
    cfg = dict(type='DetDataPreprocessor', mean=MEAN, std=STD, bgr_to_rgb=True)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_normalise_flip_pad_and_metainfo():
    torch.manual_seed(0)
    images = [torch.randint(0, 256, (3, 10, 20), dtype=torch.uint8),
              torch.randint(0, 256, (3, 33, 15), dtype=torch.uint8)]
    samples = [DetDataSample(metainfo=dict(img_shape=(10, 20))),
               DetDataSample(metainfo=dict(img_shape=(33, 15)))]
    out = build(pad_value=-7)(dict(inputs=images, data_samples=samples))
    inputs = out['inputs']
    # Batch padded to the largest image, each side rounded up to 32.
    assert inputs.shape == (2, 3, 64, 32) and inputs.dtype == torch.float32
    for img, result in zip(images, inputs):
        h, w = img.shape[1:]
        for c in range(3):  # BGR input → RGB, then (x - mean) / std per RGB channel
            expected = (img[2 - c].float() - MEAN[c]) / STD[c]
            torch.testing.assert_close(result[c, :h, :w], expected)
        assert torch.all(result[:, h:, :] == -7) and torch.all(result[:, :, w:] == -7)
    assert [s.batch_input_shape for s in out['data_samples']] == [(64, 32), (64, 32)]
    assert [s.pad_shape for s in out['data_samples']] == [(32, 32), (64, 32)]
    assert out['data_samples'][0].img_shape == (10, 20)


def test_stacked_tensor_input_and_no_samples():
    batch = torch.full((2, 3, 40, 64), 30.0)
    out = build(bgr_to_rgb=False, pad_size_divisor=16)(dict(inputs=batch))
    assert out['inputs'].shape == (2, 3, 48, 64)
    torch.testing.assert_close(out['inputs'][0, :, 0, 0], torch.tensor([10.0, 2.5, 0.0]))
    assert out['data_samples'] is None


def test_default_divisor_is_32_and_bad_settings_are_named():
    assert build().pad_size_divisor == 32
    with pytest.raises(ValueError, match='mean'):
        build(mean=(1.0, 2.0))
    with pytest.raises(ValueError, match='std'):
        build(std=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match='pad_size_divisor'):
        build(pad_size_divisor=0)
    with pytest.raises(ValueError, match='bgr_to_rgb'):
        build(rgb_to_bgr=True)


def test_batch_fixed_size_pad_in_training_only():
    torch.manual_seed(0)
    images = [torch.randint(0, 256, (3, 10, 20), dtype=torch.uint8)]
    preprocessor = build(pad_size_divisor=8,
                         batch_augments=[dict(type='BatchFixedSizePad', size=(40, 24))])
    plain = preprocessor(dict(inputs=images, data_samples=[DetDataSample()]), training=False)
    assert plain['inputs'].shape == (1, 3, 16, 24)  # 10 x 20 padded to multiples of 8
    padded = preprocessor(dict(inputs=images, data_samples=[DetDataSample()]), training=True)
    inputs, sample = padded['inputs'], padded['data_samples'][0]
    assert inputs.shape == (1, 3, 40, 24)  # height to 40; width 24 already >= 24
    torch.testing.assert_close(inputs[..., :16, :], plain['inputs'])
    assert (inputs[..., 16:, :] == 0).all()  # padded after normalisation: value 0
    assert sample.batch_input_shape == sample.pad_shape == (40, 24)
