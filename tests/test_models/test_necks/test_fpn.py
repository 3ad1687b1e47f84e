"""FPN: hand-computed top-down fusion, extra levels of every mode, level checks and init."""
import math

import pytest
import torch
from torch import Tensor

from fcosdet.models.backbones import ResNet
from fcosdet.models.necks import FPN
from fcosdet.registry import MODELS


def make_identity(fpn: FPN) -> FPN:
    """Identity 1x1 laterals and identity 3x3 output convs (centre tap 1 per channel), zero bias."""
    with torch.no_grad():
        for module in [*fpn.lateral_convs, *fpn.fpn_convs]:
            conv = module.conv
            conv.weight.zero_()
            conv.bias.zero_()
            k = conv.kernel_size[0] // 2
            for c in range(min(conv.in_channels, conv.out_channels)):
                conv.weight[c, c, k, k] = 1.0
    return fpn


def test_top_down_sum_by_hand() -> None:
    fpn = make_identity(FPN(in_channels=[1, 1, 1], out_channels=1, num_outs=3))
    c1 = torch.arange(16.0).reshape(1, 1, 4, 4)
    c2 = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    c3 = torch.tensor([[5.0]]).reshape(1, 1, 1, 1)
    p1, p2, p3 = fpn((c1, c2, c3))
    assert p3.flatten().tolist() == [5.0]
    assert p2[0, 0].tolist() == [[6.0, 7.0], [8.0, 9.0]]
    assert p1[0, 0].tolist() == [[6.0, 7.0, 9.0, 10.0],
                                 [10.0, 11.0, 13.0, 14.0],
                                 [16.0, 17.0, 19.0, 20.0],
                                 [20.0, 21.0, 23.0, 24.0]]


def test_top_down_to_odd_size_uses_nearest_resize() -> None:
    fpn = make_identity(FPN(in_channels=[1, 1], out_channels=1, num_outs=2))
    c2 = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    p1, _ = fpn((torch.zeros(1, 1, 5, 5), c2))
    # nearest 3 -> 5 picks source index floor(i * 3 / 5) = 0, 0, 1, 1, 2
    assert p1[0, 0].tolist() == [[1.0, 1.0, 2.0, 2.0, 3.0], [1.0, 1.0, 2.0, 2.0, 3.0],
                                 [4.0, 4.0, 5.0, 5.0, 6.0], [4.0, 4.0, 5.0, 5.0, 6.0],
                                 [7.0, 7.0, 8.0, 8.0, 9.0]]


def test_lateral_and_output_convs_are_applied() -> None:
    fpn = make_identity(FPN(in_channels=[1, 1], out_channels=1, num_outs=2))
    with torch.no_grad():
        fpn.lateral_convs[1].conv.weight.fill_(2.0)
        fpn.lateral_convs[1].conv.bias.fill_(1.0)
        fpn.fpn_convs[0].conv.weight.fill_(1.0)  # 3x3 box sum with zero padding
    c1 = torch.zeros(1, 1, 2, 2)
    c2 = torch.full((1, 1, 1, 1), 3.0)
    p1, p2 = fpn((c1, c2))
    assert p2.item() == 7.0  # 2 * 3 + 1
    assert p1[0, 0].tolist() == [[28.0, 28.0], [28.0, 28.0]]  # each 3x3 window holds four 7s


def _inputs() -> tuple[Tensor, ...]:
    torch.manual_seed(0)
    return (torch.randn(2, 4, 32, 32), torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8))


@pytest.mark.parametrize('mode', ['on_input', True, 'on_lateral', 'on_output'])
@pytest.mark.parametrize('relu', [False, True])
def test_extra_conv_levels(mode: str | bool, relu: bool) -> None:
    fpn = FPN(in_channels=[4, 8, 16], out_channels=6, num_outs=5, start_level=1,
              add_extra_convs=mode, relu_before_extra_convs=relu)
    assert len(fpn.lateral_convs) == 2 and len(fpn.fpn_convs) == 5
    assert fpn.fpn_convs[2].conv.in_channels == (16 if mode in ('on_input', True) else 6)
    assert fpn.fpn_convs[2].conv.stride == fpn.fpn_convs[3].conv.stride == (2, 2)
    inputs = _inputs()
    outs = fpn(inputs)
    assert [tuple(o.shape) for o in outs] == [
        (2, 6, 16, 16), (2, 6, 8, 8), (2, 6, 4, 4), (2, 6, 2, 2), (2, 6, 1, 1)]
    with torch.no_grad():
        source = {'on_input': inputs[2], True: inputs[2],
                  'on_lateral': fpn.lateral_convs[1](inputs[2]), 'on_output': outs[1]}[mode]
        p5 = fpn.fpn_convs[2](source)
        p6 = fpn.fpn_convs[3](p5.clamp(min=0) if relu else p5)
        p7 = fpn.fpn_convs[4](p6.clamp(min=0) if relu else p6)
    for got, expected in zip(outs[2:], (p5, p6, p7)):
        assert torch.allclose(got, expected, atol=1e-6)


def test_max_pool_extra_levels_subsample_the_last_output() -> None:
    fpn = FPN(in_channels=[4, 8, 16], out_channels=6, num_outs=5, add_extra_convs=False)
    assert len(fpn.fpn_convs) == 3
    outs = fpn(_inputs())
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2]
    # kernel 1, stride 2 keeps every second row and column
    assert torch.equal(outs[3], outs[2][..., ::2, ::2])
    assert torch.equal(outs[4], outs[2][..., ::4, ::4])


def test_end_level_ignores_later_inputs() -> None:
    fpn = FPN(in_channels=[4, 8, 16], out_channels=6, num_outs=2, end_level=1)
    assert len(fpn.lateral_convs) == 2
    inputs = _inputs()
    outs = fpn(inputs)
    outs_changed = fpn((inputs[0], inputs[1], inputs[2] + 100))
    assert all(torch.equal(a, b) for a, b in zip(outs, outs_changed))
    assert [o.shape[-1] for o in outs] == [32, 16]


def test_norm_cfg_and_no_norm_on_lateral() -> None:
    fpn = FPN(in_channels=[4, 8], out_channels=8, num_outs=2,
              norm_cfg=dict(type='GN', num_groups=2), no_norm_on_lateral=True)
    keys = set(fpn.state_dict())
    assert {'lateral_convs.0.conv.bias', 'fpn_convs.0.gn.weight'} <= keys
    assert 'fpn_convs.0.conv.bias' not in keys and 'lateral_convs.0.gn.weight' not in keys


def test_default_init_is_xavier_uniform() -> None:
    torch.manual_seed(0)
    fpn = FPN(in_channels=[64, 128], out_channels=64, num_outs=2)
    for module in fpn.fpn_convs:
        module.conv.bias.data.fill_(3.0)
    fpn.init_weights()
    weight = fpn.fpn_convs[0].conv.weight  # fan_in = fan_out = 64 * 9
    bound = math.sqrt(6 / (2 * 64 * 9))
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.95 * bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert torch.all(fpn.fpn_convs[0].conv.bias == 0)


def test_fcos_pyramid_on_resnet_has_strides_8_to_128() -> None:
    backbone = ResNet(depth=18).eval()
    neck = MODELS.build(dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=16,
                             start_level=1, add_extra_convs='on_output', num_outs=5,
                             relu_before_extra_convs=True))
    outs = neck(backbone(torch.rand(1, 3, 128, 256)))
    assert [tuple(o.shape[-2:]) for o in outs] == [(128 // s, 256 // s)
                                                   for s in (8, 16, 32, 64, 128)]
    assert all(o.shape[1] == 16 for o in outs)


@pytest.mark.parametrize('kwargs, key', [
    (dict(add_extra_convs='on_foo'), 'add_extra_convs'),
    (dict(add_extra_convs=1), 'add_extra_convs'),
    (dict(num_outs=1), 'num_outs'),
    (dict(start_level=3), 'start_level'),
    (dict(end_level=5), 'end_level'),
    (dict(end_level=1, num_outs=4), 'num_outs'),
])
def test_bad_arguments_name_the_key(kwargs: dict, key: str) -> None:
    cfg = dict(type='FPN', in_channels=[4, 8, 16], out_channels=6, num_outs=5)
    with pytest.raises(ValueError, match=key):
        MODELS.build({**cfg, **kwargs})


def test_wrong_number_of_inputs() -> None:
    fpn = FPN(in_channels=[4, 8, 16], out_channels=6, num_outs=3)
    with pytest.raises(ValueError, match='in_channels'):
        fpn(_inputs()[:2])
