
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData
from torch import nn

from fcosdet.engine.optimizers import CPUAmpOptimWrapper
from fcosdet.registry import MODELS, OPTIM_WRAPPERS
from fcosdet.structures import DetDataSample


def test_forward_runs_in_bfloat16_and_params_stay_float32():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 3)
    wrapper = CPUAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    x = torch.randn(1, 3, 8, 8)
    with wrapper.optim_context(model):
        out = model(x)
    assert out.dtype == torch.bfloat16
    before = model.weight.detach().clone()
    wrapper.update_params(out.float().square().mean())
    assert model.weight.dtype == torch.float32
    # SGD step = -lr * grad, with the gradient of the bf16 forward
    assert not torch.equal(model.weight, before)
    assert model(x).dtype == torch.float32  # no autocast outside the context


def test_float32_never_autocasts_and_other_dtypes_are_refused():
    model = nn.Conv2d(3, 4, 3)
    wrapper = CPUAmpOptimWrapper(dtype='float32', optimizer=torch.optim.SGD(model.parameters(),
                                                                             lr=0.1))
    for _ in range(10):  # no probing either
        with wrapper.optim_context(model):
            assert model(torch.randn(1, 3, 8, 8)).dtype == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of .* got 'float16'"):
        CPUAmpOptimWrapper(dtype='float16', optimizer=torch.optim.SGD([nn.Parameter(
            torch.ones(1))], lr=0.1))
    assert OPTIM_WRAPPERS.get('CPUAmpOptimWrapper') is CPUAmpOptimWrapper


def test_tiny_fcos_trains_under_cpu_amp(tiny_config):
    """One bf16 training step of the tiny FCOS: finite losses and updated weights."""
    cfg = Config.fromfile(tiny_config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    wrapper = CPUAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                         scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[8.0, 8.0, 40.0, 48.0]]),
                                       labels=torch.tensor([1]))
    data = dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)],
                data_samples=[sample])
    before = model.bbox_head.conv_cls.weight.detach().clone()
    log_vars = model.train_step(data, wrapper)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    assert not torch.equal(model.bbox_head.conv_cls.weight, before)


def test_bad_probe_settings():
    params = [nn.Parameter(torch.ones(1))]
    with pytest.raises(ValueError, match='probe_iters must be >= 1, got 0'):
        CPUAmpOptimWrapper(dtype='auto', probe_iters=0, optimizer=torch.optim.SGD(params, lr=1))
    with pytest.raises(ValueError, match='min_speedup must be > 0, got 0'):
        CPUAmpOptimWrapper(dtype='auto', min_speedup=0, optimizer=torch.optim.SGD(params, lr=1))


@pytest.mark.parametrize('dtype', ['bfloat16', 'auto'])
def test_a_model_off_the_cpu_trains_without_cpu_autocast(dtype):
    """A model on another device (here 'meta', standing for CUDA): CPU autocast would not touch
    it, so the wrapper turns autocast off for good instead of timing two float32 modes."""
    model = nn.Linear(2, 2, device='meta')
    wrapper = CPUAmpOptimWrapper(dtype=dtype, optimizer=torch.optim.SGD(
        nn.Linear(2, 2).parameters(), lr=0.1))
    for _ in range(3):
        with wrapper.optim_context(model):
            assert not torch.is_autocast_enabled('cpu')
    assert wrapper.use_autocast is False
    with wrapper.optim_context(nn.Linear(2, 2)):  # the decision holds for the run
        assert not torch.is_autocast_enabled('cpu')
