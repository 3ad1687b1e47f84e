# All improvements plus DCNv2: deformable 3x3 convs in ResNet stages 2-4 and on the last conv
# of both head towers (box AP 42.3 in MMDetection's model zoo). Pure-PyTorch deformable convs
# (fcosdet.models.layers), so no compiled mmcv is needed.
_base_ = './fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py'

model = dict(
    backbone=dict(
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True)),
    bbox_head=dict(dcn_on_last_conv=True))
