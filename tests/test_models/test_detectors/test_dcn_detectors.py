"""FCOS-DCN, VFNet and TOOD built from the shipped configs (slimmed: narrow backbone and head)
train a few SGD steps and predict on CPU; their deformable sampling is trained."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from fcosdet.models.layers import DeformConv2d, ModulatedDeformConv2dPack
from fcosdet.registry import MODELS
from fcosdet.structures import DetDataSample
from fcosdet.utils import register_all_modules

REPO = Path(__file__).resolve().parents[3]
CONFIGS = {
    'fcos/fcos_r50-dcn-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py':
        ({'loss_cls', 'loss_bbox', 'loss_centerness'}, ModulatedDeformConv2dPack),
    'vfnet/vfnet_r50_fpn_1x_coco.py': ({'loss_cls', 'loss_bbox', 'loss_bbox_rf'}, DeformConv2d),
    # TOOD samples its boxes at offsets predicted by reg_offset_module (no deformable conv)
    'tood/tood_r50_fpn_1x_coco.py': ({'loss_cls', 'loss_bbox'}, None),
}


def slim_model(config: str) -> torch.nn.Module:
    """The config's model with 8 base channels, a 32-channel FPN/head and 4 classes."""
    register_all_modules()
    cfg = Config.fromfile(REPO / 'configs' / config).model.to_dict()
    cfg['backbone'].update(base_channels=8, init_cfg=None)
    cfg['neck'].update(in_channels=[32, 64, 128, 256], out_channels=32)
    cfg['bbox_head'].update(num_classes=4, in_channels=32, feat_channels=32,
                            norm_cfg=dict(type='GN', num_groups=8, requires_grad=True))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def batch(model: torch.nn.Module) -> dict:
    gen = torch.Generator().manual_seed(0)
    samples, images = [], []
    for boxes, labels in (([[8.0, 10.0, 50.0, 60.0]], [2]), ([[30.0, 4.0, 90.0, 40.0]], [0])):
        sample = DetDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes),
                                           labels=torch.tensor(labels))
        samples.append(sample)
        images.append(torch.randint(0, 256, (3, 64, 96), generator=gen, dtype=torch.uint8))
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), True)


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_trains_and_predicts(config: str) -> None:
    loss_keys, deform_type = CONFIGS[config]
    model = slim_model(config)
    data = batch(model)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if deform_type is None:
        deform = model.bbox_head.reg_offset_module[2]
    else:
        deform = next(m for m in model.modules() if type(m) is deform_type)
    before = deform.weight.detach().clone()
    for _ in range(2):
        losses = model(data['inputs'], data['data_samples'], mode='loss')
        assert set(losses) == loss_keys
        assert all(torch.isfinite(v) for v in losses.values())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    assert not torch.equal(deform.weight, before)  # the deformable sampling is trained
    model.eval()
    with torch.no_grad():
        results = model(data['inputs'], data['data_samples'], mode='predict')
    assert len(results) == 2
    pred = results[0].pred_instances
    assert pred.bboxes.shape[1:] == (4,) and pred.scores.shape == pred.labels.shape
