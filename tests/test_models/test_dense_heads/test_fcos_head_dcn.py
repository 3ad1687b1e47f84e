"""FCOSHead(dcn_on_last_conv=True): a DCNv2 as the last conv of both towers."""
import torch
from mmengine.structures import InstanceData

from fcosdet.models.dense_heads import FCOSHead
from fcosdet.models.layers import ModulatedDeformConv2dPack

GN8 = dict(type='GN', num_groups=8, requires_grad=True)


def make_head(dcn: bool) -> FCOSHead:
    return FCOSHead(num_classes=2, in_channels=16, feat_channels=16, stacked_convs=2,
                    norm_cfg=GN8, conv_bias=True, dcn_on_last_conv=dcn,
                    strides=(8, 16), regress_ranges=((-1, 64), (64, 1e8)))


def test_last_tower_conv_is_deformable_with_mmdetection_names() -> None:
    head = make_head(True)
    for tower in (head.cls_convs, head.reg_convs):
        assert type(tower[0].conv) is torch.nn.Conv2d
        assert type(tower[1].conv) is ModulatedDeformConv2dPack
    names = [k for k in head.state_dict() if k.startswith('cls_convs.1.')]
    assert names == ['cls_convs.1.conv.weight', 'cls_convs.1.conv.bias',
                     'cls_convs.1.conv.conv_offset.weight',
                     'cls_convs.1.conv.conv_offset.bias', 'cls_convs.1.gn.weight',
                     'cls_convs.1.gn.bias']


def test_zero_offsets_give_the_plain_head_with_half_weights_and_losses_train_offsets() -> None:
    torch.manual_seed(0)
    plain, deform = make_head(False), make_head(True)
    plain.init_weights()
    deform.load_state_dict(plain.state_dict(), strict=False)  # conv_offset stays zero
    with torch.no_grad():
        for tower in (deform.cls_convs, deform.reg_convs):
            tower[1].conv.weight.mul_(2)  # mask sigmoid(0) = 0.5 halves the product
    feats = (torch.rand(2, 16, 8, 8), torch.rand(2, 16, 4, 4))
    for ours, ref in zip(deform(feats), plain(feats)):
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    gts = [InstanceData(bboxes=torch.tensor([[4.0, 6.0, 40.0, 50.0]]),
                        labels=torch.tensor([1])), InstanceData(
        bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))]
    losses = deform.loss_by_feat(*deform(feats), gts)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_centerness'}
    sum(losses.values()).backward()
    offset_grad = deform.reg_convs[1].conv.conv_offset.weight.grad
    assert offset_grad is not None and offset_grad.abs().sum() > 0
