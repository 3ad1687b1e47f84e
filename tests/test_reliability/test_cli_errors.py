"""Every tool error is one line naming the file/key/value; ``--debug`` shows the traceback."""
import subprocess
import sys

import pytest
from mmengine import DefaultScope
from mmengine.config import Config

from fcosdet.registry import MODELS
from fcosdet.utils.cli import run_cli
from fcosdet.utils.error_format import error_message

from ._faults import REPO


@pytest.fixture
def cfg(tiny_config: str) -> Config:
    return Config.fromfile(tiny_config)


def _raised(build: dict) -> Exception:
    with DefaultScope.overwrite_default_scope('fcosdet'), pytest.raises(Exception) as err:
        MODELS.build(build)
    return err.value


def test_unknown_type_names_the_key_and_the_closest_type(cfg):
    cfg.model.backbone.type = 'ResNett'
    err = _raised(cfg.model)
    assert error_message(err, cfg) == (f"{cfg.filename}: model.backbone.type='ResNett' is not "
                                       "a registered model type (did you mean 'ResNet'?)")
    assert error_message(err) == "'ResNett' is not a registered model type (did you mean " \
                                 "'ResNet'?)"


def test_unexpected_keyword_names_the_key_and_the_closest_argument(cfg):
    cfg.model.bbox_head.num_clases = 3
    err = _raised(cfg.model)
    assert error_message(err, cfg) == (f"{cfg.filename}: model.bbox_head.num_clases: FCOSHead "
                                       "has no argument 'num_clases' (did you mean "
                                       "'num_classes'?)")


def test_bad_test_cfg_key_and_bare_errors(cfg):
    cfg.model.test_cfg.nms_pree = 5
    assert error_message(_raised(cfg.model)) == (
        "FCOSHead test_cfg: unknown key 'nms_pree'; expected one of ['max_per_img', "
        "'min_bbox_size', 'nms', 'nms_pre', 'score_thr', 'with_sqrt_score']")
    assert error_message(KeyError('img_path')) == 'KeyError: img_path'
    assert error_message(ValueError('a\n  multi-line\tmessage here')) == \
        'a multi-line message here'


def _fail(argv):
    raise ValueError('COCO annotation file x.json: duplicate annotation id 3')


def test_run_cli_one_line_and_debug(monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['tool.py'])
    monkeypatch.delenv('FCOSDET_DEBUG', raising=False)
    with pytest.raises(SystemExit) as code:
        run_cli(_fail)
    assert code.value.code == 1
    assert capsys.readouterr().err == ('tool.py: error: COCO annotation file x.json: duplicate '
                                       'annotation id 3\n')
    monkeypatch.setattr(sys, 'argv', ['tool.py', '--debug'])
    with pytest.raises(ValueError, match='duplicate annotation id 3'):
        run_cli(_fail)
    assert sys.argv == ['tool.py']  # removed before the tool parses its arguments
    monkeypatch.setenv('FCOSDET_DEBUG', '1')
    with pytest.raises(ValueError):
        run_cli(_fail)


def test_train_tool_prints_one_line_for_an_unknown_type(tiny_config):
    result = subprocess.run(
        [sys.executable, 'tools/train.py', tiny_config, '--cfg-options',
         'model.backbone.type=ResNett'], cwd=REPO, capture_output=True, text=True,
        env={'PYTHONPATH': str(REPO), 'PATH': '/usr/bin:/bin'})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"train.py: error: {tiny_config}: model.backbone.type='ResNett' is not a registered "
        "model type (did you mean 'ResNet'?)")
    assert 'Traceback' not in result.stderr
