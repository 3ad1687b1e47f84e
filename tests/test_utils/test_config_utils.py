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


def test_load_config_copies_checks_and_names_the_file(cfg, tmp_path):
    from fcosdet.utils import load_config

    loaded = load_config(cfg, {'model.backbone.depth': 18, 'fast_path': dict(fuse_bn=True)})
    assert loaded.model.backbone.depth == 18 and loaded.fast_path.fuse_bn
    assert cfg.model.backbone.depth == 50 and 'fast_path' not in cfg  # the caller's is unchanged
    with pytest.raises(KeyError, match='"model.backbon" is not in the config'):
        load_config(cfg, {'model.backbon.depth': 18})
    with pytest.raises(FileNotFoundError, match='config file not found: .*none.py'):
        load_config(str(tmp_path / 'none.py'))
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(\n')
    with pytest.raises(ValueError, match='cannot load config .*broken.py: SyntaxError'):
        load_config(broken)
    with pytest.raises(TypeError, match='got dict'):
        load_config(dict(model=None))


def test_init_detector_checks_cfg_options_like_the_tools(cfg):
    from fcosdet.apis import init_detector

    with pytest.raises(KeyError, match='"model.backbon" is not in the config'):
        init_detector(cfg, cfg_options={'model.backbon.depth': 18})
