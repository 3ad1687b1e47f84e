# GFL, ResNet-50 (torchvision weights), FPN, GN head, 1x (COCO val2017 box AP 40.2 in
# MMDetection's model zoo): the ATSS config with the GFL head (same backbone, neck, anchors,
# assigner, test settings and schedule).
_base_ = '../atss/atss_r50_fpn_1x_coco.py'
model = dict(
    type='GFL',
    bbox_head=dict(
        _delete_=True,
        type='GFLHead',
        num_classes=80,
        in_channels=256,
        stacked_convs=4,
        feat_channels=256,
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=8,
            scales_per_octave=1,
            strides=[8, 16, 32, 64, 128]),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)))
