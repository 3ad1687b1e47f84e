# The demo config logging to TensorBoard as well (`pip install -e ".[tensorboard]"`):
# `tensorboard --logdir work_dirs/fcos_r18_fpn_gn-head_demo_tb` shows the losses, learning rate,
# validation mAP and validation drawings. See docs/train_test.md, "Logging backends".
_base_ = './fcos_r18_fpn_gn-head_demo.py'

visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),
                                dict(type='TensorboardVisBackend')])
