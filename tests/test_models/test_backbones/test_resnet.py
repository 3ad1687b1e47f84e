"""ResNet: output shapes, stride placement, freezing, norm_eval, init and a block reference."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fcosdet.models.backbones import BasicBlock, Bottleneck, ResNet, ResNeXt
from fcosdet.registry import MODELS


@pytest.mark.parametrize('depth, channels', [(18, (64, 128, 256, 512)),
                                             (50, (256, 512, 1024, 2048))])
def test_output_shapes_and_strides(depth: int, channels: tuple[int, ...]) -> None:
    model = MODELS.build(dict(type='ResNet', depth=depth)).eval()
    outs = model(torch.rand(1, 3, 64, 96))
    # stage i has stride 4 * 2**i: 64x96 -> 16x24, 8x12, 4x6, 2x3
    assert [tuple(o.shape) for o in outs] == [
        (1, channels[0], 16, 24), (1, channels[1], 8, 12),
        (1, channels[2], 4, 6), (1, channels[3], 2, 3)]


def test_out_indices_and_dilation() -> None:
    model = ResNet(depth=18, strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2),
                   out_indices=(1, 3)).eval()
    outs = model(torch.rand(2, 3, 64, 64))
    # last stage keeps stride 16 and dilates its 3x3 convs instead
    assert [tuple(o.shape) for o in outs] == [(2, 128, 8, 8), (2, 512, 4, 4)]
    assert model.layer4[0].conv1.dilation == (2, 2) and model.layer4[0].conv1.padding == (2, 2)
    assert model.layer4[0].conv1.stride == (1, 1)


@pytest.mark.parametrize('style, conv1_stride, conv2_stride', [('pytorch', 1, 2),
                                                               ('caffe', 2, 1)])
def test_style_places_the_stride(style: str, conv1_stride: int, conv2_stride: int) -> None:
    model = ResNet(depth=50, style=style)
    for name in ('layer2', 'layer3', 'layer4'):
        block = getattr(model, name)[0]
        assert block.conv1.stride == (conv1_stride, conv1_stride)
        assert block.conv2.stride == (conv2_stride, conv2_stride)
        assert block.downsample[0].stride == (2, 2)
        assert getattr(model, name)[1].conv1.stride == (1, 1)
        assert getattr(model, name)[1].conv2.stride == (1, 1)
    first = model.layer1[0]
    assert first.conv1.stride == first.conv2.stride == first.downsample[0].stride == (1, 1)
    assert tuple(o.shape[-1] for o in model.eval()(torch.rand(1, 3, 64, 64))) == (16, 8, 4, 2)


def _frozen_prefixes(frozen_stages: int) -> tuple[str, ...]:
    stem = ('conv1.', 'bn1.') if frozen_stages >= 0 else ()
    return stem + tuple(f'layer{i}.' for i in range(1, frozen_stages + 1))


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 3])
def test_frozen_stages(frozen_stages: int) -> None:
    model = ResNet(depth=18, frozen_stages=frozen_stages, norm_eval=False)
    model.train()
    prefixes = _frozen_prefixes(frozen_stages)
    for name, param in model.named_parameters():
        assert param.requires_grad == (not name.startswith(prefixes)), name
    for name, module in model.named_modules():
        if name:
            assert module.training == (not (name + '.').startswith(prefixes)), name


def test_frozen_stem_has_no_gradient_and_fixed_stats() -> None:
    model = ResNet(depth=18, frozen_stages=1, norm_eval=False).train()
    mean_before = model.layer1[0].bn1.running_mean.clone()
    model(torch.rand(2, 3, 32, 32))[-1].sum().backward()
    assert model.conv1.weight.grad is None and model.layer1[0].conv1.weight.grad is None
    assert model.layer2[0].conv1.weight.grad is not None
    assert torch.equal(model.layer1[0].bn1.running_mean, mean_before)


@pytest.mark.parametrize('norm_eval', [True, False])
def test_norm_eval_keeps_running_stats(norm_eval: bool) -> None:
    model = ResNet(depth=18, norm_eval=norm_eval).train()
    before = {n: b.clone() for n, b in model.named_buffers() if n.endswith('running_mean')}
    model(torch.rand(2, 3, 32, 32) * 5 + 1)
    after = dict(model.named_buffers())
    changed = [not torch.equal(after[n], b) for n, b in before.items()]
    assert all(changed) if not norm_eval else not any(changed)
    # norm_eval freezes statistics only, not the affine parameters
    assert model.layer2[0].bn1.weight.requires_grad
    assert model.training and model.layer2[0].conv1.weight.requires_grad


def test_default_init_is_kaiming_and_constant_norm() -> None:
    torch.manual_seed(0)
    model = ResNet(depth=18)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight)
            nn.init.normal_(module.bias)
    model.init_weights()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
    weight = model.layer4[1].conv2.weight  # 512 x 512 x 3 x 3, fan_out = 512 * 9
    assert weight.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.02)
    assert abs(weight.mean().item()) < 1e-3


def test_pretrained_init_cfg_loads_a_local_checkpoint(tmp_path) -> None:
    source = ResNet(depth=18)
    for i, param in enumerate(source.parameters()):
        param.data.fill_(0.01 * i)
    path = tmp_path / 'r18.pth'
    torch.save(source.state_dict(), path)
    model = ResNet(depth=18, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for (name, got), expected in zip(model.state_dict().items(), source.state_dict().values()):
        assert torch.equal(got, expected), name


def _bn(x: Tensor, bn: nn.BatchNorm2d) -> Tensor:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (x - bn.running_mean[:, None, None]) * scale[:, None, None] + bn.bias[:, None, None]


def _randomise(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize('style', ['pytorch', 'caffe'])
def test_bottleneck_matches_a_functional_reference(style: str) -> None:
    torch.manual_seed(1)
    model = ResNeXt(depth=50, base_channels=8, groups=2, base_width=4, style=style).eval()
    block = model.layer2[0]  # strided, projected, grouped
    _randomise(block)
    x = torch.randn(1, 32, 9, 7)
    s1, s2 = (1, 2) if style == 'pytorch' else (2, 1)
    y = F.relu(_bn(F.conv2d(x, block.conv1.weight, stride=s1), block.bn1))
    y = F.relu(_bn(F.conv2d(y, block.conv2.weight, stride=s2, padding=1, groups=2), block.bn2))
    y = _bn(F.conv2d(y, block.conv3.weight), block.bn3)
    identity = _bn(F.conv2d(x, block.downsample[0].weight, stride=2), block.downsample[1])
    with torch.no_grad():
        assert torch.allclose(block(x), F.relu(y + identity), atol=1e-5)
    assert block(x).shape == (1, 64, 5, 4)


def test_basic_block_matches_a_functional_reference() -> None:
    torch.manual_seed(2)
    block = ResNet(depth=34, base_channels=4).eval().layer1[1]
    assert isinstance(block, BasicBlock) and block.downsample is None
    _randomise(block)
    x = torch.randn(2, 4, 6, 6)
    y = F.relu(_bn(F.conv2d(x, block.conv1.weight, padding=1), block.bn1))
    y = _bn(F.conv2d(y, block.conv2.weight, padding=1), block.bn2)
    with torch.no_grad():
        assert torch.allclose(block(x), F.relu(y + x), atol=1e-5)


def test_gn_norm_cfg_names_norms_gn() -> None:
    model = ResNet(depth=50, base_channels=8, norm_cfg=dict(type='GN', num_groups=2))
    keys = model.state_dict().keys()
    assert 'gn1.weight' in keys and 'layer1.0.gn3.weight' in keys and 'bn1.weight' not in keys
    assert isinstance(model.layer1[0], Bottleneck)
    assert model.eval()(torch.rand(1, 3, 32, 32))[-1].shape == (1, 256, 1, 1)


@pytest.mark.parametrize('kwargs, key', [
    (dict(depth=42), 'depth'),
    (dict(depth=50, style='tf'), 'style'),
    (dict(depth=50, num_stages=5), 'num_stages'),
    (dict(depth=50, out_indices=(0, 4)), 'out_indices'),
    (dict(depth=50, strides=(1, 2)), 'strides'),
    (dict(depth=50, frozen_stages=5), 'frozen_stages'),
])
def test_bad_arguments_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        MODELS.build(dict(type='ResNet', **kwargs))
