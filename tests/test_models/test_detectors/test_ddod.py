"""DDOD detector: MMDetection's type name, forward modes and learning one synthetic image
(with the deformable first convs and an image without boxes in the batch)."""
import pytest
import torch
from mmengine.structures import InstanceData
from tiny_setup import fit_steps

from fcosdet.models.detectors import DDOD
from fcosdet.registry import MODELS
from fcosdet.structures import DetDataSample
from fcosdet.structures.bbox import bbox_overlaps

BOX = [12.0, 20.0, 44.0, 52.0]
ANCHORS = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4, scales_per_octave=1,
               strides=[8, 16, 32])
TINY_DDOD = dict(
    type='DDOD',
    backbone=dict(type='ResNet', depth=18, base_channels=8, out_indices=(1, 2, 3),
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=32, start_level=0, num_outs=3),
    bbox_head=dict(type='DDODHead', num_classes=2, in_channels=32, feat_channels=32,
                   stacked_convs=1, norm_cfg=dict(type='GN', num_groups=8),
                   anchor_generator=ANCHORS),
    train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9, alpha=0.8),
                   reg_assigner=dict(type='ATSSAssigner', topk=9, alpha=0.5),
                   allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(score_thr=0.05, nms_pre=100, max_per_img=10,
                  nms=dict(type='nms', iou_threshold=0.6)),
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[128.0] * 3, std=[64.0] * 3,
                           pad_size_divisor=32))


def two_images(model: DDOD) -> dict:
    """A bright square (label 1) at BOX on a dark 64 x 64 image, and an image without boxes."""
    imgs, samples = [], []
    for boxes in ([BOX], []):
        img = torch.full((3, 64, 64), 30, dtype=torch.uint8)
        for x1, y1, x2, y2 in boxes:
            img[:, int(y1):int(y2), int(x1):int(x2)] = 220
        sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes).reshape(-1, 4),
                                           labels=torch.ones(len(boxes), dtype=torch.long))
        imgs.append(img)
        samples.append(sample)
    return model.data_preprocessor(dict(inputs=imgs, data_samples=samples), True)


def test_type_name_tensor_mode_and_loss_keys():
    torch.manual_seed(0)
    model = MODELS.build(TINY_DDOD)
    assert type(model) is DDOD
    assert 'conv_offset' in dict(model.bbox_head.cls_convs[0].conv.named_children())
    data = two_images(model)
    cls, box, iou = model(data['inputs'], mode='tensor')
    sizes = [(8, 8), (4, 4), (2, 2)]
    assert [tuple(c.shape) for c in cls] == [(2, 2, *s) for s in sizes]
    assert [tuple(b.shape) for b in box] == [(2, 4, *s) for s in sizes]
    assert [tuple(i.shape) for i in iou] == [(2, 1, *s) for s in sizes]
    losses = model(data['inputs'], data['data_samples'], mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_iou'}
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    with pytest.raises(ValueError, match='data_samples'):
        model(data['inputs'], None, mode='predict')


def test_learns_one_image_through_the_deformable_towers():
    torch.manual_seed(0)
    model = MODELS.build(TINY_DDOD)
    model.init_weights()
    data = two_images(model)
    first, last = fit_steps(model, data, steps=40)
    assert last < 0.5 * first
    offsets = model.bbox_head.reg_convs[0].conv.conv_offset.weight
    assert offsets.abs().max() > 0  # the offsets were trained (they start at zero)

    model.eval()
    with torch.no_grad():
        samples = model(data['inputs'], data['data_samples'], mode='predict')
    pred = samples[0].pred_instances
    assert pred.labels[0].item() == 1 and pred.scores[0].item() > 0.2
    assert bbox_overlaps(pred.bboxes[:1], torch.tensor([BOX])).item() > 0.6
