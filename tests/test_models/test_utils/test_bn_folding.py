"""BN folding: hand-worked fused parameters, equal outputs, and the layers it must not touch."""
import pytest
import torch
from torch import nn

from fcosdet.models.utils import fold_batchnorm, fused_conv_bn_params
from fcosdet.registry import MODELS


def _randomise_bn_stats(module: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters in every BatchNorm."""
    gen = torch.Generator().manual_seed(0)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=gen))
            bn.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            bn.weight.data.copy_(torch.randn(c, generator=gen))
            bn.bias.data.copy_(torch.randn(c, generator=gen))


def test_fused_params_hand_worked():
    # conv: y = 2x (+0.5 bias); BN: mean 1, var 3, eps 1 (std 2), gamma 4, beta 0.5.
    # bn(conv(x)) = (2x + 0.5 - 1) / 2 * 4 + 0.5 = 4x - 0.5
    conv = nn.Conv2d(1, 1, 1)
    conv.weight.data.fill_(2.0)
    conv.bias.data.fill_(0.5)
    bn = nn.BatchNorm2d(1, eps=1.0).eval()
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(3.0)
    bn.weight.data.fill_(4.0)
    bn.bias.data.fill_(0.5)
    weight, bias = fused_conv_bn_params(conv, bn)
    assert weight.item() == pytest.approx(4.0)
    assert bias.item() == pytest.approx(-0.5)
    conv.bias = None  # without conv bias: (2x - 1) * 2 + 0.5 = 4x - 1.5
    assert fused_conv_bn_params(conv, bn)[1].item() == pytest.approx(-1.5)


def test_fold_resnet_keeps_outputs():
    backbone = MODELS.build(dict(type='ResNet', depth=18, base_channels=8, out_indices=(0, 3)))
    _randomise_bn_stats(backbone)
    backbone.eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        expected = backbone(x)
        folded = fold_batchnorm(backbone)
        actual = backbone(x)
    # stem + 8 blocks x 2 + 3 downsample projections
    assert len(folded) == 20
    assert 'bn1' in folded and 'layer2.0.downsample.1' in folded
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    for exp, act in zip(expected, actual):
        torch.testing.assert_close(act, exp, atol=1e-5, rtol=1e-5)


def test_fold_after_loading_a_checkpoint():
    source = MODELS.build(dict(type='ResNet', depth=18, base_channels=8, out_indices=(3,)))
    _randomise_bn_stats(source)
    target = MODELS.build(dict(type='ResNet', depth=18, base_channels=8, out_indices=(3,)))
    target.load_state_dict(source.state_dict())  # the original layout still loads
    target.eval()
    source.eval()
    fold_batchnorm(target)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x)[0], source(x)[0], atol=1e-5, rtol=1e-5)


def test_training_mode_bn_is_not_folded():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert fold_batchnorm(model) == []
    assert isinstance(model[1], nn.BatchNorm2d)


class _SharedConvOutput(nn.Module):
    """The conv output feeds the BN and the residual sum: folding would change the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.bn = nn.BatchNorm2d(2)
        self.conv2 = nn.Conv2d(2, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y + self.bn2(self.conv2(x))


def test_conv_with_second_user_is_not_folded():
    model = _SharedConvOutput()
    _randomise_bn_stats(model)
    model.eval()
    x = torch.randn(1, 2, 5, 5)
    with torch.no_grad():
        expected = model(x)
        assert fold_batchnorm(model) == ['bn2']
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
    assert isinstance(model.bn, nn.BatchNorm2d) and isinstance(model.bn2, nn.Identity)
    assert model.conv2.bias is not None


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow cannot be traced
            return self.bn(self.conv(x))
        return x


def test_untraceable_module_raises_naming_it():
    with pytest.raises(RuntimeError, match='_Untraceable'):
        fold_batchnorm(_Untraceable().eval())


def test_fold_resnet_with_deformable_convs():
    """The FCOS-DCN demo's backbone: DCN layers (Python shape checks fx cannot trace) stay
    single calls; every plain conv -> BN pair folds, the DCN -> BN ones stay; outputs equal."""
    backbone = MODELS.build(dict(
        type='ResNet', depth=50, base_channels=4, out_indices=(0, 1, 2, 3),
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True)))
    _randomise_bn_stats(backbone)
    backbone.eval()
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        expected = backbone(x)
        folded = fold_batchnorm(backbone)
        actual = backbone(x)
    # stem + 16 bottlenecks x (bn1, bn3) + bn2 of stage 1's 3 blocks + 4 downsample projections
    assert len(folded) == 1 + 16 * 2 + 3 + 4
    assert 'layer1.0.bn2' in folded and 'layer2.0.bn2' not in folded  # after a DCNv2
    assert isinstance(backbone.layer2[0].bn2, nn.BatchNorm2d)
    for exp, act in zip(expected, actual):
        torch.testing.assert_close(act, exp, atol=1e-4, rtol=1e-4)
