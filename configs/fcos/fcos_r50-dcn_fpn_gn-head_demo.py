# FCOS-DCN on the generated demo dataset: the demo recipe of fcos_r18_fpn_gn-head_demo.py with
# deformable convs where the COCO FCOS-DCN config has them, i.e. DCNv2 as the 3x3 conv of the
# bottlenecks of stages 2-4 and as the last conv of both head towers. Deformable convs need
# bottleneck blocks (as in MMDetection), so the backbone is a slim ResNet-50 (base_channels 16:
# stage outputs 64/128/256/512 channels) trained from scratch; pure-PyTorch DCN, no compiled ops.
_base_ = './fcos_r18_fpn_gn-head_demo.py'

base_channels = 16

model = dict(
    backbone=dict(
        depth=50,
        base_channels=base_channels,
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True)),
    neck=dict(in_channels=[base_channels * 4 * 2**i for i in range(4)]),
    bbox_head=dict(dcn_on_last_conv=True))
