# The demo FCOS with LiteFCOSHead (depthwise-separable tower convs), the example of
# docs/contribute_head.md. Run from the repository root with the root on the Python path:
#   PYTHONPATH=. python tools/train.py projects/example_head/configs/fcos_lite-head_r18_fpn_demo.py
_base_ = '../../../configs/fcos/fcos_r18_fpn_gn-head_demo.py'

# Imported when the config is loaded, so that `LiteFCOSHead` is registered before the model is
# built. `allow_failed_imports=False`: a wrong module path stops with an ImportError at once.
custom_imports = dict(imports=['projects.example_head.lite_fcos_head'], allow_failed_imports=False)

# Only the type changes; every other head key (num_classes, channels, losses, ...) is inherited.
model = dict(bbox_head=dict(type='LiteFCOSHead'))
