"""ResNeXt: grouped 3x3 convs of width floor(planes * base_width / base_channels) * groups."""
import pytest
import torch

from fcosdet.models.backbones import ResNet, ResNeXt
from fcosdet.registry import MODELS


@pytest.mark.parametrize('groups, base_width, widths', [
    (64, 4, (256, 512, 1024, 2048)),   # X-101-64x4d
    (32, 4, (128, 256, 512, 1024)),    # X-101-32x4d
    (8, 3, (24, 48, 96, 192)),         # 64 * 3 // 64 * 8 = 24, doubling per stage
])
def test_grouped_conv_width(groups: int, base_width: int, widths: tuple[int, ...]) -> None:
    model = MODELS.build(dict(type='ResNeXt', depth=50, groups=groups, base_width=base_width))
    for i, width in enumerate(widths):
        for block in getattr(model, f'layer{i + 1}'):
            assert block.conv2.groups == groups
            assert block.conv1.out_channels == block.conv2.out_channels == width
            assert block.conv2.weight.shape == (width, width // groups, 3, 3)
            assert block.conv3.out_channels == 64 * 2**i * 4  # output as in ResNet


def test_width_is_relative_to_base_channels() -> None:
    model = ResNeXt(depth=50, base_channels=6, groups=2, base_width=5)
    # stage i: planes 6 * 2**i -> floor(6 * 2**i * 5 / 6) * 2 = 10 * 2**i
    assert [getattr(model, f'layer{i}')[0].conv2.out_channels for i in range(1, 5)] == [
        10, 20, 40, 80]
    assert model.layer4[0].conv3.out_channels == 6 * 8 * 4


def test_groups_one_equals_resnet_layout() -> None:
    resnext = ResNeXt(depth=50, groups=1, base_width=4)
    resnet = ResNet(depth=50)
    assert {k: v.shape for k, v in resnext.state_dict().items()} == {
        k: v.shape for k, v in resnet.state_dict().items()}


def test_forward_shapes() -> None:
    model = ResNeXt(depth=50, base_channels=16, groups=4, base_width=4).eval()
    outs = model(torch.rand(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [
        (1, 64, 16, 24), (1, 128, 8, 12), (1, 256, 4, 6), (1, 512, 2, 3)]


@pytest.mark.parametrize('kwargs, key', [(dict(depth=18), 'depth'),
                                         (dict(depth=50, groups=0), 'groups')])
def test_bad_arguments_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        MODELS.build(dict(type='ResNeXt', **kwargs))
