"""ResNet with deformable 3x3 convs (``dcn`` / ``stage_with_dcn``)."""
import pytest
import torch
from torch import nn

from fcosdet.models.backbones import ResNet, ResNeXt
from fcosdet.models.layers import ModulatedDeformConv2dPack

DCN = dict(type='DCNv2', deform_groups=1, fallback_on_stride=False)


def test_stage_with_dcn_places_deformable_convs() -> None:
    model = ResNet(depth=50, base_channels=8, dcn=DCN, stage_with_dcn=(False, True, False, True),
                   style='caffe')
    for stage, deform in zip(('layer1', 'layer2', 'layer3', 'layer4'), (0, 1, 0, 1)):
        for block in getattr(model, stage):
            expected = ModulatedDeformConv2dPack if deform else nn.Conv2d
            assert type(block.conv2) is expected
    conv2 = model.layer2[0].conv2  # caffe style: the stride is on conv1
    assert (conv2.stride, conv2.padding, conv2.bias) == ((1, 1), (1, 1), None)
    assert model.layer4[0].conv2.conv_offset.out_channels == 27
    fallback = ResNet(depth=50, base_channels=8, dcn=dict(DCN, fallback_on_stride=True),
                      stage_with_dcn=(True, True, True, True))
    assert all(type(m) is not ModulatedDeformConv2dPack for m in fallback.modules())
    assert DCN['fallback_on_stride'] is False  # the config dict is not mutated


def test_grouped_dcn_in_resnext() -> None:
    model = ResNeXt(depth=50, base_channels=16, groups=4, base_width=4, dcn=dict(type='DCN'),
                    stage_with_dcn=(False, False, False, True))
    conv2 = model.layer4[0].conv2
    assert conv2.groups == 4 and conv2.conv_offset.out_channels == 18
    assert model.eval()(torch.rand(1, 3, 64, 64))[3].shape == (1, 512, 2, 2)


def test_dcn_backbone_at_init_is_the_plain_one_with_half_conv2() -> None:
    """Zero offsets and mask sigmoid(0) = 0.5: doubling the conv2 weights of the deformable
    stages reproduces the plain ResNet with the same weights."""
    torch.manual_seed(0)
    plain = ResNet(depth=50, base_channels=16, style='caffe').eval()
    deform = ResNet(depth=50, base_channels=16, style='caffe', dcn=DCN,
                    stage_with_dcn=(False, True, True, True)).eval()
    missing, unexpected = deform.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and all('conv_offset' in k for k in missing)
    with torch.no_grad():
        for module in deform.modules():
            if isinstance(module, ModulatedDeformConv2dPack):
                module.weight.mul_(2)
    x = torch.rand(1, 3, 64, 96)
    for ours, ref in zip(deform(x), plain(x)):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_bad_dcn_arguments_fail_early() -> None:
    with pytest.raises(ValueError, match='BasicBlock: dcn'):
        ResNet(depth=18, dcn=DCN, stage_with_dcn=(False, True, True, True))
    with pytest.raises(ValueError, match='stage_with_dcn'):
        ResNet(depth=50, dcn=DCN, stage_with_dcn=(False, True))
    with pytest.raises(ValueError, match="dcn must be a dict with a 'type'"):
        ResNet(depth=50, dcn=dict(deform_groups=1), stage_with_dcn=(True,) * 4)
    with pytest.raises(ValueError, match='conv_cfg'):
        ResNet(depth=50, dcn=DCN, conv_cfg=dict(type='Conv2d'),
               stage_with_dcn=(False, True, True, True))


def test_init_weights_keeps_offsets_at_zero() -> None:
    model = ResNet(depth=50, base_channels=8, dcn=DCN, stage_with_dcn=(False, False, True, True))
    model.init_weights()
    offsets = [m.conv_offset for m in model.modules() if hasattr(m, 'conv_offset')]
    assert len(offsets) == 6 + 3
    assert all(o.weight.abs().sum() == 0 and o.bias.abs().sum() == 0 for o in offsets)
    assert model.layer3[0].conv2.weight.abs().sum() > 0 and model.layer1[0].conv2.weight.std() > 0
