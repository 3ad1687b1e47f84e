# All improvements: centre sampling, targets normalised by stride, centre-ness on the regression
# branch, GIoU loss, biased tower convs, NMS 0.6 (box AP 38.7 in MMDetection's model zoo).
_base_ = './fcos_r50-caffe_fpn_gn-head_1x_coco.py'

model = dict(
    data_preprocessor=dict(mean=[103.530, 116.280, 123.675], std=[1.0, 1.0, 1.0]),
    bbox_head=dict(
        norm_on_bbox=True,
        centerness_on_reg=True,
        center_sampling=True,
        conv_bias=True,
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0)),
    test_cfg=dict(nms=dict(type='nms', iou_threshold=0.6)))
