# GFL on the generated demo dataset: the ATSS demo (itself the FCOS demo's backbone, neck, data
# and schedule) with the GFL head and losses.
# `python tools/train.py configs/gfl/gfl_r18_fpn_demo.py`: 0.696 mAP after 40 epochs
# (docs/model_zoo.md).
_base_ = '../atss/atss_r18_fpn_demo.py'
feat_channels = 64

model = dict(
    type='GFL',
    bbox_head=dict(
        _delete_=True,
        type='GFLHead',
        num_classes=4,
        in_channels=feat_channels,
        stacked_convs=2,
        feat_channels=feat_channels,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)))
