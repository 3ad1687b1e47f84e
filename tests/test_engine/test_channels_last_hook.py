"""ChannelsLastHook: training in channels-last memory gives the NCHW step's numbers; on CUDA
(only where a GPU is present) AMP bf16/fp16 training in channels-last runs and learns."""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.structures import InstanceData

from fcosdet.engine.hooks import ChannelsLastHook
from fcosdet.registry import HOOKS, MODELS
from fcosdet.structures import DetDataSample
from fcosdet.utils import register_all_modules

CHANNELS_LAST = torch.channels_last


def _tiny_model(tiny_config: str) -> torch.nn.Module:
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(tiny_config).model)
    model.init_weights()
    return model.train()


def _batch(device: str = 'cpu') -> dict:
    samples = []
    for boxes, labels in (([[8.0, 8.0, 40.0, 48.0], [30, 20, 90, 60]], [1, 3]),
                          ([[50.0, 10.0, 120.0, 80.0]], [0])):
        sample = DetDataSample(metainfo=dict(img_shape=(96, 128), ori_shape=(96, 128),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes), labels=torch.tensor(labels))
        samples.append(sample)
    gen = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 255, (3, 96, 128), generator=gen, dtype=torch.uint8).to(device)
              for _ in samples]
    return dict(inputs=images, data_samples=samples)


def _convert(model: torch.nn.Module) -> list[str]:
    messages = []
    runner = SimpleNamespace(model=model, logger=SimpleNamespace(info=messages.append))
    ChannelsLastHook().before_train(runner)
    return messages


def _conv_inputs_are_channels_last(model: torch.nn.Module, data: dict) -> list[bool]:
    """Memory format of the input of every conv in one forward (recorded by forward hooks)."""
    seen = []
    handles = [m.register_forward_hook(
        lambda mod, args, out: seen.append(args[0].is_contiguous(memory_format=CHANNELS_LAST)))
        for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model.loss(**model.data_preprocessor(copy.deepcopy(data), True))
    for handle in handles:
        handle.remove()
    return seen


def test_training_step_equals_nchw_and_every_conv_runs_nhwc(tiny_config):
    plain = _tiny_model(tiny_config)
    fast = copy.deepcopy(plain)
    assert _convert(fast) == ['ChannelsLastHook: training in channels-last memory format']
    _convert(fast)  # a second conversion adds no second input hook
    assert len(fast.backbone._forward_pre_hooks) == 1
    assert fast.backbone.conv1.weight.is_contiguous(memory_format=CHANNELS_LAST)
    data = _batch()
    seen = _conv_inputs_are_channels_last(fast, data)
    assert len(seen) > 20 and all(seen)
    assert not _conv_inputs_are_channels_last(plain, data)[0]  # the NCHW stem input
    logs = {}
    for name, model in (('plain', plain), ('fast', fast)):
        wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
        logs[name] = [model.train_step(copy.deepcopy(data), wrapper) for _ in range(2)]
    for plain_log, fast_log in zip(logs['plain'], logs['fast'], strict=True):
        for key in ('loss_cls', 'loss_bbox', 'loss_centerness'):
            torch.testing.assert_close(fast_log[key], plain_log[key], rtol=1e-4, atol=1e-5)
    # after two SGD steps the weights (and the BN statistics) are still the same numbers
    fast_state = fast.state_dict()
    # (the stem's weight gradient sums 2 x 96 x 128 products: its order differs between the
    # NCHW and NHWC kernels, hence rounding differences near 5e-5 there)
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(fast_state[name], value, rtol=1e-3, atol=1e-4, msg=name)


def test_hook_is_registered_and_in_the_default_runtime(tiny_config):
    assert HOOKS.get('ChannelsLastHook') is ChannelsLastHook
    hooks = [hook['type'] for hook in Config.fromfile(tiny_config).custom_hooks]
    assert 'ChannelsLastHook' in hooks


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA-only: AMP and channels-last on GPU')
@pytest.mark.parametrize('dtype', ['bfloat16', 'float16'])
def test_cuda_amp_channels_last_training(tiny_config, dtype):
    model = _tiny_model(tiny_config).cuda()
    _convert(model)
    wrapper = AmpOptimWrapper(dtype=dtype, optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    data = _batch('cuda')
    assert all(_conv_inputs_are_channels_last(model, data))
    before = copy.deepcopy(model.state_dict())
    losses = [model.train_step(copy.deepcopy(data), wrapper)['loss'] for _ in range(3)]
    assert all(torch.isfinite(loss) for loss in losses)
    assert model.backbone.conv1.weight.dtype == torch.float32  # master weights stay fp32
    assert model.backbone.conv1.weight.is_contiguous(memory_format=CHANNELS_LAST)
    changed = [name for name, value in model.state_dict().items()
               if value.is_floating_point() and not torch.equal(value, before[name])]
    assert 'bbox_head.conv_cls.weight' in changed and 'backbone.conv1.weight' in changed
