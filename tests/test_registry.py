from mmengine.registry import MODELS as MMENGINE_MODELS

from fcosdet.registry import MODELS, TASK_UTILS


def test_registries_are_children_of_mmengine():
    assert MODELS.parent is MMENGINE_MODELS
    assert MODELS.scope == 'fcosdet'
    assert TASK_UTILS.scope == 'fcosdet'
