import pytest
from mmengine.config import Config

from fcosdet.utils import check_cfg_options


@pytest.fixture
def cfg() -> Config:
    return Config(dict(model=dict(backbone=dict(depth=50)),
                       pipeline=[dict(type='A'), dict(type='B', prob=0.5)], lr=0.1),
                  filename=None)


@pytest.mark.parametrize('key', ['lr', 'model.backbone.depth', 'model.backbone.new_arg',
                                 'pipeline.1.prob', 'pipeline.0.new', 'randomness',
                                 'work_dir', 'find_unused_parameters'])
def test_accepted_keys(cfg, key):
    check_cfg_options(cfg, {key: 1})


@pytest.mark.parametrize('key, missing', [
    ('modle.backbone.depth', '"modle" is not in the config'),
    ('lrr', '"lrr" is not in the config'),
    ('model.backbon.depth', '"model.backbon" is not in the config'),
    ('pipeline.2.prob', '"pipeline.2" is not in the config'),
    ('pipeline.x.prob', '"pipeline.x" is not in the config'),
    ('lr.value', '"lr" is a float, not a dict or list'),
])
def test_rejected_keys_name_the_missing_part(cfg, key, missing):
    with pytest.raises(KeyError) as err:
        check_cfg_options(cfg, {'lr': 0.2, key: 1})
    assert missing in err.value.args[0] and key in err.value.args[0]
